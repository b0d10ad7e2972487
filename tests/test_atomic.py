"""Atomic writes: the target appears whole or not at all, with ordinary permissions."""
import os
import stat

import pytest

from hilbert_cli.atomic import atomic_save, atomic_write_json, atomic_write_text


def test_written_file_has_umask_permissions(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "hello")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    assert p.read_text() == "hello"


def test_failed_writer_leaves_no_file_and_no_temp(tmp_path):
    def writer(f):
        f.write(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_save(tmp_path / "out.bin", writer)
    assert list(tmp_path.iterdir()) == []


def test_replace_keeps_old_content_until_rename(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert target.read_text().strip().endswith("}")
    assert '"v": 2' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
