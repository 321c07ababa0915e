"""The JVM class archive of local sessions (lenga.io.jvm_archive)."""

from __future__ import annotations

import os

import psutil
import pytest

from lenga.io import jvm_archive


def test_options_name_the_archive_only_once_it_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("LENGA_JVM_ARCHIVE_DIR", str(tmp_path))
    path = jvm_archive.archive_path()
    assert path.parent == tmp_path and path.suffix == ".jsa"
    assert jvm_archive.java_options() == ""
    path.write_bytes(b"")
    assert f"-XX:SharedArchiveFile={path}" in jvm_archive.java_options()


def test_a_reinstalled_jar_needs_a_new_archive(tmp_path, monkeypatch):
    """The JVM ignores an archive dumped from other copies of the same jar paths (a reinstalled venv)."""
    monkeypatch.setenv("LENGA_JVM_ARCHIVE_DIR", str(tmp_path))
    jars = tmp_path / "spark" / "jars"
    jars.mkdir(parents=True)
    jar = jars / "spark-core.jar"
    jar.write_bytes(b"one")
    monkeypatch.setattr(jvm_archive, "spark_jars", lambda: jars)
    first = jvm_archive.archive_path()
    os.utime(jar, ns=(1, 1))
    assert jvm_archive.archive_path() != first


def test_the_archive_is_keyed_by_java_and_the_spark_jars(tmp_path, monkeypatch):
    monkeypatch.setenv("LENGA_JVM_ARCHIVE_DIR", str(tmp_path))
    path = jvm_archive.archive_path()
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert jvm_archive.archive_path() not in (None, path)


def test_the_local_session_jvm_maps_the_archive(spark):
    """``./spark-submit.sh setup`` (run by .ci/run) writes the archive; the session's JVM uses it."""
    path = jvm_archive.archive_path()
    if path is None or not path.is_file():
        pytest.skip("no JVM class archive: ./spark-submit.sh setup writes it")
    jvm = next(p for p in psutil.Process().children(recursive=True) if p.name() == "java")
    assert str(path) in {m.path for m in jvm.memory_maps(grouped=True)}
