"""Weight-file hashes: computed once per file version, several files side by side."""

import hashlib
import os

import zturbo.hashing as hashing


def test_files_are_hashed_once_each_and_again_when_they_change(tmp_path, monkeypatch):
    files = []
    for i in range(3):
        f = tmp_path / f"shard-{i}.safetensors"
        f.write_bytes(os.urandom(100_000 + i))
        files.append(f)
    want = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    read = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: (read.append(p.name), real(p))[1])
    assert hashing.cached_sha256_many(files) == want
    assert sorted(read) == [f.name for f in files]
    read.clear()
    assert hashing.cached_sha256_many(files) == want and hashing.cached_sha256(files[1]) == want[1]
    assert read == []  # remembered
    files[2].write_bytes(b"other weights")
    os.utime(files[2], ns=(1, 1))  # another version, even within the file system's time resolution
    assert hashing.cached_sha256_many(files)[2] == hashlib.sha256(b"other weights").hexdigest()
    assert read == [files[2].name]
    assert hashing.cached_sha256_many([]) == []
