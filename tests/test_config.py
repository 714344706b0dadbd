from pathlib import Path

import pytest

from vesalius.agent.config import load_settings
from vesalius.agent.errors import AgentError


def test_precedence_defaults_file_env_flags(tmp_path):
    config = tmp_path / "vesalius.toml"
    config.write_text('vlm_url = "http://file:1/v1"\ntop_k = 7\nvlm_max_tokens = 100\n')
    env = {"HOME": str(tmp_path), "VESALIUS_CONFIG": str(config), "VESALIUS_TOP_K": "9"}
    s = load_settings(env, vlm_max_tokens=50)
    assert s.vlm_url == "http://file:1/v1"  # file over default
    assert s.top_k == 9  # environment over file
    assert s.vlm_max_tokens == 50  # flag over everything
    assert s.cache_dir == tmp_path / ".cache" / "vesalius"
    assert s.threads_db == tmp_path / ".local" / "share" / "vesalius" / "threads.sqlite"


def test_default_config_file_location_and_xdg(tmp_path):
    (tmp_path / ".config" / "vesalius").mkdir(parents=True)
    (tmp_path / ".config" / "vesalius" / "config.toml").write_text("require_model = true\n")
    s = load_settings({"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xc")})
    assert s.require_model is True and s.cache_dir == tmp_path / "xc" / "vesalius"


@pytest.mark.parametrize(
    "env,match",
    [
        ({"VESALIUS_TOP_K": "many"}, "VESALIUS_TOP_K"),
        ({"VESALIUS_VLM_EXTRA_BODY": "[not json"}, "VESALIUS_VLM_EXTRA_BODY"),
        ({"VESALIUS_CONFIG": "{dir}/bad.toml"}, "cannot read the config file"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path, env, match):
    (tmp_path / "bad.toml").write_text("this is = = not toml")
    env = {k: v.format(dir=tmp_path) for k, v in env.items()} | {"HOME": str(tmp_path)}
    with pytest.raises(AgentError, match=match):
        load_settings(env)


def test_extra_body_is_read_as_json():
    s = load_settings({"HOME": "/nonexistent", "VESALIUS_VLM_EXTRA_BODY": '{"return_token_ids": true, "top_k": 5}'})
    assert s.vlm_extra_body == {"return_token_ids": True, "top_k": 5}


def test_unknown_keys_in_the_file_are_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("vlm_ulr = 'typo'\n")
    with pytest.raises(AgentError, match="vlm_ulr"):
        load_settings({"HOME": str(tmp_path), "VESALIUS_CONFIG": str(config)})
    assert Path(config).read_text() == "vlm_ulr = 'typo'\n"


def test_deid_key_is_created_private_then_reused_and_a_short_one_refused(make_settings, tmp_path):
    import stat

    from vesalius.agent.deps import Deps
    from vesalius.agent.errors import AgentError

    settings = make_settings()
    first = Deps.from_settings(settings).ingest_options().deid.key
    path = settings.deid_key_path
    assert path == settings.data_dir / "deid.key" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Deps.from_settings(settings).ingest_options().deid.key == first and len(first) == 32
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    with pytest.raises(AgentError, match="only 3 bytes"):
        Deps.from_settings(make_settings(deid_key_file=short)).ingest_options()


def test_threads_creating_the_deid_key_at_once_all_get_the_one_key(tmp_path):
    """Several conversations of one process (an evaluation asking questions at once) start together on a fresh
    installation: every one must get the same key, none an error."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from vesalius.agent.deps import _deid_key

    for attempt in range(20):
        path = tmp_path / str(attempt) / "deid.key"
        start = threading.Barrier(8)

        def key(_, path=path, start=start):
            start.wait()
            return _deid_key(path)

        with ThreadPoolExecutor(8) as pool:
            keys = list(pool.map(key, range(8)))
        assert len(set(keys)) == 1 and keys[0] == path.read_bytes()
        assert sorted(p.name for p in path.parent.iterdir()) == ["deid.key"]
