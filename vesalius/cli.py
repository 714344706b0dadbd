"""The `vesalius` command: the agent's commands, and `vesalius eval`, which drives the agent from outside."""

from vesalius.agent.cli import main
from vesalius.eval.cli import eval_group

main.add_command(eval_group)

__all__ = ["main"]
