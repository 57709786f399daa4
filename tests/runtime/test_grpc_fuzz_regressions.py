"""Hostile gRPC input against a real `modelpress serve` process (its --grpc-port door): the ways a call can be
wrong that fuzz_bench exercises in bulk, each pinned here with the status it must get, plus a short seeded
campaign; after each the door must still answer a correct call."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.testing.fuzz_driver import plan
from modelpress.testing.grpc import GrpcCase, GrpcSender, frame, grpc_alive, grpc_problems, grpc_target, infer_body
from tests.runtime.conftest import build_repository

grpc = pytest.importorskip("grpc")
pytest.importorskip("h2")

TOKEN = "fuzz-token"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    from modelpress.testing.server import ServerProcess

    repo = build_repository(tmp_path_factory.mktemp("grpc-fuzz") / "repo")
    server = ServerProcess(repo, "--poll-interval", "0", "--grpc-port", "0", "--max-body-bytes", str(MAX_BODY),
                           env={"MODELPRESS_TOKENS": TOKEN, "MODELPRESS_ACCESS_LOG": "false"})
    sender = GrpcSender(grpc_target(server), timeout=30)
    yield sender, server
    sender.close()
    log = server.stop()
    assert "unexpected error on gRPC" not in log, log


def _image(rows: int = 1) -> np.ndarray:
    return np.full((rows, 8, 8, 1), 0.5, dtype=np.float32)


def _still_answers(sender: GrpcSender) -> None:
    assert grpc_alive(sender, TOKEN) == []


@pytest.mark.parametrize("name, body, wire, expected", [
    ("random bytes", b"\xff\xfe\x00garbage", False, "INVALID_ARGUMENT"),
    ("unknown model", infer_body("nope", "image", _image(), raw=True), False, "NOT_FOUND"),
    ("raw a byte short", infer_body("digits", "image", _image(), raw=True)[:-1], False, "INVALID_ARGUMENT"),
    ("over the message cap", infer_body("digits", "image", np.zeros((MAX_BODY // 4 + 1,), np.float32), raw=True),
     False, "RESOURCE_EXHAUSTED"),
    ("a length prefix past the end", frame(infer_body("digits", "image", _image(), raw=True), length=10_000), True,
     "UNIMPLEMENTED"),
    ("no message at all", b"", True, "UNIMPLEMENTED"),
    ("a length prefix over the cap", frame(b"x", length=2**31), True, "RESOURCE_EXHAUSTED"),
])
def test_a_broken_call_gets_its_status_and_the_door_goes_on(door, name, body, wire, expected):
    sender, _ = door
    answer = sender(GrpcCase(name, "ModelInfer", body, TOKEN, wire=wire))
    assert answer.code == expected, (name, answer)
    assert answer.message.strip(), "a refusal says why"
    _still_answers(sender)


def test_a_compressed_flag_without_an_encoding_is_refused_by_the_transport(door):
    """grpc's own transport answers INTERNAL before any modelpress code runs (the gRPC spec's code for it);
    the servicer never sees the call, and the door goes on."""
    sender, _ = door
    body = frame(infer_body("digits", "image", _image(), raw=True), flag=1)
    answer = sender(GrpcCase("flag", "ModelInfer", body, TOKEN, wire=True))
    assert (answer.code, answer.message) == ("INTERNAL", "Compression bit set but no encoding configured")
    _still_answers(sender)


@pytest.mark.parametrize("token", [None, "wrong", "é", "x" * 5000])
def test_a_missing_or_wrong_token_is_unauthenticated(door, token):
    """A non-ASCII token cannot go through grpcio; the sender writes it raw with h2, as any client could."""
    sender, _ = door
    answer = sender(GrpcCase("auth", "ModelInfer", infer_body("digits", "image", _image(), raw=False), token))
    assert answer.code == "UNAUTHENTICATED", answer
    _still_answers(sender)


def test_a_short_seeded_campaign_gets_only_expected_statuses(door):
    from modelpress.testing.grpc_fuzzing import GrpcTargets, hostile_grpc

    sender, server = door
    cases = plan(hostile_grpc(GrpcTargets(token=TOKEN, max_body=MAX_BODY)), 150, seed_value=3)
    found = {repr(case): problems for case in cases if (problems := grpc_problems(case, sender(case)))}
    assert found == {}
    assert server.proc.poll() is None
    _still_answers(sender)
