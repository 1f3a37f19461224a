"""metrics.jsonl is mirrored to TensorBoard event files, and a resume's restart rebuilds them so
TensorBoard shows exactly the records the log kept."""

from __future__ import annotations

import struct

from tensorboardX.proto import event_pb2

from vpals_jax.train.metrics import MetricsLog


def _scalars(tb_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files (TFRecord framing: length, crc, payload, crc)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tb_dir.glob("events.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 16 + n
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_records_are_mirrored_and_a_restart_keeps_only_the_kept_ones(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.restart(0)
    for epoch in (1, 2, 3):
        log.write({"epoch": epoch, "test": {"accuracy": 0.5 + epoch / 10}, "batch_loss": 1.0 / epoch})
    log.write({"event": "verification", "epoch": 3, "verdicts": [
        {"spec": "cpu increasing", "status": "VERIFIED", "verified_fraction": 1.0}]})  # fmt: skip
    log.close()
    seen = _scalars(log.tb_dir)
    assert seen["test/accuracy"] == [(1, 0.6000000238418579), (2, 0.699999988079071), (3, 0.800000011920929)]
    assert seen["verify/cpu_increasing/verified"] == [(3, 1.0)]

    resumed = MetricsLog(tmp_path / "metrics.jsonl")
    resumed.restart(2)  # the checkpoint had seen two records
    resumed.write({"epoch": 3, "test": {"accuracy": 0.9}})
    resumed.close()
    seen = _scalars(resumed.tb_dir)
    assert [s for s, _ in seen["test/accuracy"]] == [1, 2, 3] and seen["test/accuracy"][-1][1] > 0.89
    assert "verify/cpu_increasing/verified" not in seen


def test_mirroring_does_not_import_torch(tmp_path):
    """tensorboardX would import torch (1.7 s of a short run's clock) only to accept its tensors."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from vpals_jax.train.metrics import MetricsLog; "
            f"log = MetricsLog(Path({str(tmp_path)!r}) / 'metrics.jsonl'); log.restart(0); "
            "log.write({'epoch': 1, 'test': {'accuracy': 0.5}}); log.close(); "
            "assert 'torch' not in sys.modules, 'torch was imported'; import torch; print('ok')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert list((tmp_path / "tensorboard").glob("events.*"))
