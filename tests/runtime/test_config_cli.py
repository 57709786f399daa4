"""Settings from defaults, YAML, MODELPRESS_* and arguments; `modelpress serve` errors through the CLI."""

from __future__ import annotations

import os

import pytest

from modelpress.errors import UsageError
from modelpress.runtime.config import RuntimeConfig


def test_defaults_are_safe():
    config = RuntimeConfig()
    assert config.host == "127.0.0.1" and config.tokens == [] and config.max_body_bytes == 16 * 1024 * 1024


def test_yaml_then_environment_then_arguments(tmp_path, monkeypatch):
    path = tmp_path / "service.yaml"
    path.write_text("repository: /srv/models\nport: 9000\nthreads: 8\nbatching: true\nmax_queue_delay_ms: 5\n")
    monkeypatch.setenv("MODELPRESS_PORT", "9100")
    monkeypatch.setenv("MODELPRESS_BATCHING", "off")
    monkeypatch.setenv("MODELPRESS_TOKENS", "a, b")
    config = RuntimeConfig.load(path, threads=2)
    assert (config.repository, config.port, config.threads) == ("/srv/models", 9100, 2)
    assert config.batching is False and config.max_queue_delay_ms == 5.0 and config.tokens == ["a", "b"]
    monkeypatch.setenv("MODELPRESS_CONFIG", str(path))
    assert RuntimeConfig.load().repository == "/srv/models"


@pytest.mark.parametrize("text, words", [
    ("prot: 1\n", "unknown setting(s) prot"),
    ("port: eighty\n", "port = 'eighty' is not a valid int"),
    ("threads: 0\n", "threads must be at least 1"),
    ("batching: maybe\n", "batching = 'maybe'"),
    ("- a list\n", "must hold a mapping"),
    ("port: [\n", "not valid YAML"),
])
def test_bad_settings_name_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=None) as info:
        RuntimeConfig.load(path)
    assert words in str(info.value)


def test_token_file_problems(tmp_path):
    with pytest.raises(UsageError, match="cannot be read"):
        RuntimeConfig(token_file=str(tmp_path / "missing")).all_tokens()
    empty = tmp_path / "tokens"
    empty.write_text("# nothing yet\n")
    with pytest.raises(UsageError, match="holds no token"):
        RuntimeConfig(token_file=str(empty)).all_tokens()


def test_serve_without_a_repository_is_a_clean_error(runner, cli, monkeypatch):
    monkeypatch.delenv("MODELPRESS_REPOSITORY", raising=False)
    monkeypatch.delenv("MODELPRESS_CONFIG", raising=False)
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 2 and "no model repository given" in result.output
    assert "Traceback" not in result.output


def test_serve_a_missing_repository_is_a_clean_error(runner, cli, tmp_path):
    result = runner.invoke(cli, ["serve", str(tmp_path / "nowhere"), "--port", "0"])
    assert result.exit_code == 9 and "is not a folder" in result.output


def test_serve_a_busy_port_is_a_clean_error(runner, cli, repo):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["serve", str(repo), "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_a_bad_config_file_is_a_clean_error(runner, cli, tmp_path, repo):
    path = tmp_path / "service.yaml"
    path.write_text("max_batch_size: -3\n")
    result = runner.invoke(cli, ["serve", str(repo), "--config", str(path)])
    assert result.exit_code == 2 and "max_batch_size must be at least 1" in result.output


def test_serve_help_lists_the_options(runner, cli):
    result = runner.invoke(cli, ["serve", "--help"])
    for option in ("--host", "--port", "--workers", "--threads", "--profile", "--token-file"):
        assert option in result.output


# --- a token source that holds no token stops the start (issue 15, item 1) ---------------------------

@pytest.mark.parametrize("value", [",", " , ", "", " "])
def test_tokens_set_but_empty_in_the_environment_refuse_to_start(runner, cli, repo, monkeypatch, value):
    monkeypatch.setenv("MODELPRESS_TOKENS", value)
    result = runner.invoke(cli, ["serve", str(repo), "--port", "0"])
    assert result.exit_code == 2 and "holds no token, which would turn authentication off" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text", ["\n\n", "   \n\t\n", "# comment\n  # indented comment\n"])
def test_a_token_file_of_blank_lines_refuses_to_start_even_beside_other_tokens(runner, cli, repo, tmp_path,
                                                                                monkeypatch, text):
    path = tmp_path / "tokens"
    path.write_text(text)
    monkeypatch.setenv("MODELPRESS_TOKENS", "s3cret")
    result = runner.invoke(cli, ["serve", str(repo), "--port", "0", "--token-file", str(path)])
    assert result.exit_code == 2 and f"token file {path} holds no token" in result.output


def test_whitespace_tokens_from_yaml_are_no_tokens(tmp_path):
    path = tmp_path / "service.yaml"
    path.write_text("tokens: ['  ', '']\n")
    with pytest.raises(UsageError, match="holds no token"):
        RuntimeConfig.load(path)


def test_the_start_up_log_says_whether_authentication_is_on(start_server, repo, tmp_path, monkeypatch):
    monkeypatch.delenv("MODELPRESS_TOKENS", raising=False)
    open_server = start_server(repo, "--poll-interval", "0")
    path = tmp_path / "tokens"
    path.write_text("s3cret\nother\n")
    locked = start_server(repo, "--poll-interval", "0", "--token-file", str(path))
    assert "authentication off: no token setting" in "".join(open_server.lines)
    assert "authentication on: 2 bearer token(s)" in "".join(locked.lines)


def test_request_threads_follow_the_cores_under_granian_only(monkeypatch):
    """granian's Rust side does the socket work, so its Python threads default to the cores (2 to 4);
    waitress threads also read sockets and batching merges concurrent requests: both keep 4."""
    from modelpress.runtime import config as settings

    assert 1 <= settings.usable_cpus() <= (os.cpu_count() or 1)
    for cores, threads in ((1, 2), (2, 2), (3, 3), (16, 4)):
        monkeypatch.setattr(settings, "usable_cpus", lambda cores=cores: cores)
        assert RuntimeConfig().request_threads("granian") == threads
        assert RuntimeConfig().request_threads("waitress") == 4
        assert RuntimeConfig(batching=True).request_threads("granian") == 4
        assert RuntimeConfig(threads=8).request_threads("granian") == 8
    with pytest.raises(UsageError, match="threads must be at least 1"):
        RuntimeConfig.load(None, repository="x", threads=0)
