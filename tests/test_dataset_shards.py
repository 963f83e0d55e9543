"""Sharded dataset builds: 3 shards merged give the whole build's manifest, hash and files."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_dataset_resume import _comparable  # the manifest without what describes a run
from model.data.dataset import BuildConfig, Dataset, build_dataset
from model.data.merge import MERGE_REPORT_NAME, merge_shards
from model.data.shards import parse_shard, shard_items, shard_of
from model.errors import UgaarError
from model.progress import CancelToken, Cancelled

from test_dataset_build import _write_lyric_midi

pytestmark = pytest.mark.slow

N = 3
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- helpers

def _name_in(shard_wanted, avoid, prefix: str) -> str:
    """A file stem starting with ``prefix`` whose shard satisfies ``shard_wanted``."""
    for i in range(200):
        stem = f"{prefix}{i}"
        if shard_wanted(shard_of(f"{stem}.mid", N)) and stem not in avoid:
            return stem
    raise AssertionError("no name found")


def _make_source(folder: Path) -> dict[str, str]:
    """Eight distinct songs, a duplicate of one in another shard, one in the same shard,
    a file without lyrics and a broken one.  Returns the duplicates' stems."""
    folder.mkdir()
    for i in range(8):
        _write_lyric_midi(folder / f"tune{i}.mid", 25 + 5 * i)
    # Same notes and lyrics as tune1 (30 notes) / tune2 (35 notes), under other names.
    across = _name_in(lambda k: k != shard_of("tune1.mid", N), set(), "cover")
    within = _name_in(lambda k: k == shard_of("tune2.mid", N), {across}, "cover")
    _write_lyric_midi(folder / f"{across}.mid", 30)
    _write_lyric_midi(folder / f"{within}.mid", 35)
    _write_lyric_midi(folder / "silent.mid", 30, with_lyrics=False)
    (folder / "garbage.mid").write_bytes(b"MThd\x00\x00\x00\x06not really midi")
    return {"across": across, "within": within}


def _config(src: Path, out: Path, **kw) -> BuildConfig:
    # builtin audio: the same bytes on every run, so files can be compared
    base = dict(source="midi", path=str(src), out=str(out), audio_renderer="builtin",
                display_sheets=True, sheet_batch_size=8)
    base.update(kw)
    return BuildConfig(**base)


def _files(root: Path) -> dict[str, str]:
    """Relative path → SHA-1 of every sample file (manifest, reports and state aside)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if (path.is_file() and path.name not in ("manifest.json", MERGE_REPORT_NAME)
                and not path.name.startswith(".")):
            out[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def _song_stem(song_id: str) -> str:
    return song_id.rsplit("-", 1)[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    src = base / "midi"
    dups = _make_source(src)
    whole = build_dataset(_config(src, base / "whole"))
    shards = [build_dataset(_config(src, base / f"shard{k}", shard=(k, N))) for k in range(N)]
    return {"base": base, "src": src, "dups": dups, "whole": whole, "shards": shards}


# ---------------------------------------------------------------- slicing

def test_shard_spec_and_stable_slices():
    assert parse_shard("0/3") == (0, 3) and parse_shard(" 2/3 ") == (2, 3)
    for bad in ("3/3", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(UgaarError, match="--shard"):
            parse_shard(bad)
    # The key is the file name's stem: another mount point or folder agrees.
    assert shard_of("/data/lmd/abc123.npy", 7) == shard_of("/mnt/other/abc123.npy", 7)
    items = [f"/x/song{i}.mid" for i in range(60)]
    slices = [shard_items(items, (k, N)) for k in range(N)]
    indexes = [i for s in slices for i, _ in s]
    assert sorted(indexes) == list(range(60))              # disjoint and complete
    assert all(len(s) > 5 for s in slices)                  # and not all in one shard
    # Not list order: the same items reversed land in the same shards.
    assert {item for _, item in shard_items(items[::-1], (1, N))} == \
        {item for _, item in slices[1]}


# ---------------------------------------------------------------- merge = whole build

def test_three_shards_merge_into_the_whole_build(built, tmp_path):
    whole, shards = built["whole"], built["shards"]
    assert all(s.config["shard"] == [k, N] for k, s in enumerate(shards))
    assert "shard" not in whole.config
    # each shard built its own slice of the items, every item once
    parsed = sorted(r["index"] for s in shards for r in s.manifest["shard"]["parsed"])
    assert parsed == list(range(whole.report["items"]))

    merged, report = merge_shards([s.root for s in reversed(shards)], tmp_path / "merged")
    assert merged.content_hash == whole.content_hash
    assert _comparable(merged.manifest) == _comparable(whole.manifest)
    assert _files(merged.root) == _files(whole.root)
    assert Dataset.open(merged.root).content_hash == whole.content_hash
    # splits are the whole build's (a function of the song id)
    assert [s.split for s in merged.samples] == [s.split for s in whole.samples]
    # skipped files in the whole build's order, with its reasons
    assert [Path(s["path"]).name for s in merged.report["skipped"]] == \
        ["garbage.mid", "silent.mid"]
    assert report["files"]["copied"] == 0 and report["files"]["present"] == 0
    assert json.loads((merged.root / MERGE_REPORT_NAME).read_text()) == report


def test_duplicate_group_split_across_shards(built, tmp_path):
    whole, shards, dups = built["whole"], built["shards"], built["dups"]
    k_tune1, k_cover = shard_of("tune1.mid", N), shard_of(f"{dups['across']}.mid", N)
    assert k_tune1 != k_cover
    # Each shard kept its copy: it cannot see the other shard's.
    kept_by = {k: {_song_stem(r["song_id"]) for r in s.songs} for k, s in enumerate(shards)}
    assert "tune1" in kept_by[k_tune1] and dups["across"] in kept_by[k_cover]
    # A duplicate within one shard is merged there already.
    k_within = shard_of("tune2.mid", N)
    assert shards[k_within].report["duplicates"]["merged_songs"] >= 1

    merged, report = merge_shards([s.root for s in shards], tmp_path / "merged")
    assert merged.report["duplicates"] == whole.report["duplicates"] == \
        {"merged_songs": 2, "groups": 2}
    # the merge says what it did: the copy that is not canonical is left out
    dropped = report["dropped_duplicates"]
    assert len(dropped) == 1
    (d,) = dropped
    canonical = min(("tune1", dups["across"]))
    other = max(("tune1", dups["across"]))
    assert _song_stem(d["song_id"]) == other and _song_stem(d["canonical"]) == canonical
    assert d["dir"] == str(shards[shard_of(f"{other}.mid", N)].root)
    assert d["canonical_dir"] == str(shards[shard_of(f"{canonical}.mid", N)].root)
    row = next(r for r in merged.songs if _song_stem(r["song_id"]) == canonical)
    assert [_song_stem(x) for x in row["merged"]] == [other]
    assert d["song_id"] not in {s.song_id for s in merged.samples}
    # its files were not placed
    other_shard = shards[shard_of(f"{other}.mid", N)]
    dropped_ids = [s.sample_id for s in other_shard.samples if s.song_id == d["song_id"]]
    assert dropped_ids and not any((merged.root / "audio" / f"{sid}.flac").exists()
                                   for sid in dropped_ids)


def test_killed_merge_resumes(built, tmp_path):
    whole, shards = built["whole"], built["shards"]
    out = tmp_path / "killed"
    dirs = [str(s.root) for s in shards]
    # kill -9 from inside the merge after 5 samples: no handler runs, as with an OOM kill
    script = (
        "import os, signal, sys\n"
        "from model.data.merge import merge_shards\n"
        "def stop(p):\n"
        "    if p.stage == 'merge' and p.done == 5:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "merge_shards(sys.argv[2:], sys.argv[1], progress=stop)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(out), *dirs], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "manifest.json").exists()
    placed = len(list((out / "audio").glob("*.flac")))
    assert 5 <= placed < len(whole)
    (out / "audio" / ".x.flac.123.tmp").write_bytes(b"half")  # a torn write's leftover

    merged, report = merge_shards(dirs, out)
    assert merged.content_hash == whole.content_hash
    assert _files(out) == _files(whole.root)
    assert report["files"]["present"] >= placed
    assert not list(out.rglob(".*.tmp*"))

    # a stop through the cancel token leaves an unfinished folder too, and resumes
    token = CancelToken()
    again = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        merge_shards(dirs, again, progress=lambda p: p.stage == "merge" and p.done == 3
                     and token.set(), cancel=token)
    assert not (again / "manifest.json").exists()
    assert merge_shards(dirs, again)[0].content_hash == whole.content_hash


# ---------------------------------------------------------------- clear errors

def _copy(src: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        path = dst / "manifest.json"
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))
    return dst


def test_incomplete_or_overlapping_shards_are_one_clear_error(built, tmp_path):
    s0, s1, s2 = (s.root for s in built["shards"])
    out = tmp_path / "out"

    def fails(dirs, *patterns):
        with pytest.raises(UgaarError) as info:
            merge_shards(dirs, out)
        message = str(info.value)
        assert "\n" not in message
        for pattern in patterns:
            assert pattern in message, message
        assert not (out / "manifest.json").exists()

    fails([s0, s2], "shard 1/3", "missing", str(s0), str(s2))
    fails([s0, s1, s2, s1], str(s1), "given twice")
    twin = _copy(s1, tmp_path / "twin")
    fails([s0, s1, twin, s2], str(twin), "overlaps", str(s1), "shard 1/3")
    fails([s0, s1, s2, built["whole"].root], str(built["whole"].root), "not a shard")
    unfinished = _copy(s1, tmp_path / "unfinished")
    (unfinished / "manifest.json").unlink()
    fails([s0, unfinished, s2], str(unfinished), "not a finished shard")
    fails([s0, tmp_path / "nowhere", s2], "nowhere", "no such shard folder")

    def other_seed(m):
        m["config"]["split_seed"] = 7
    seeded = _copy(s1, tmp_path / "seeded", other_seed)
    fails([s0, seeded, s2], str(seeded), "other settings", "split_seed")

    def other_count(m):
        m["shard"]["count"] = 4
        m["config"]["shard"] = [1, 4]
    four = _copy(s1, tmp_path / "four", other_count)
    fails([s0, four, s2], str(four), "1/4")

    def lost_item(m):
        m["shard"]["parsed"] = m["shard"]["parsed"][1:]
    short = _copy(s1, tmp_path / "short", lost_item)
    fails([s0, short, s2], "incomplete")

    def more_items(m):
        m["shard"]["items_total"] += 1
    listed = _copy(s1, tmp_path / "listed", more_items)
    fails([s0, listed, s2], str(listed), "other source items")

    holed = _copy(s1, tmp_path / "holed")
    sorted((holed / "audio").glob("*.flac"))[0].unlink()
    fails([s0, holed, s2], str(holed), "has no audio/")


# ---------------------------------------------------------------- CLI

def test_cli_builds_shards_and_merges(built, tmp_path, capsys):
    from model.cli import main
    src, whole = built["src"], built["whole"]
    dirs = []
    for k in range(N):
        out = tmp_path / f"s{k}"
        assert main(["dataset", "build", "--source", "midi", str(src), "--out", str(out),
                     "--shard", f"{k}/{N}", "--audio-renderer", "builtin", "--quiet",
                     "--sheet-batch", "8"]) == 0
        dirs.append(str(out))
    capsys.readouterr()
    assert main(["dataset", "merge", *dirs, "--out", str(tmp_path / "m"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "merged 3 shards" in printed
    assert "duplicates of a song in another shard: 1" in printed
    assert whole.content_hash[:12] in printed
    assert Dataset.open(tmp_path / "m").content_hash == whole.content_hash
    assert main(["dataset", "build", "--source", "midi", str(src), "--out",
                 str(tmp_path / "x"), "--shard", "3/3"]) == 2
    assert "0 ≤ K < N" in capsys.readouterr().err


# ---------------------------------------------------------------- a real set

def test_lmd_shards_merge_into_the_whole_build(lmd_release, tmp_path):
    def config(out, **kw):
        return BuildConfig(source="lmd-npy", path=str(lmd_release), out=str(out), limit=12,
                           audio_renderer="builtin", display_sheets=False, **kw)
    whole = build_dataset(config(tmp_path / "whole"))
    shards = [build_dataset(config(tmp_path / f"s{k}", shard=(k, N))) for k in range(N)]
    merged, _ = merge_shards([s.root for s in shards], tmp_path / "merged")
    assert merged.content_hash == whole.content_hash
    assert _comparable(merged.manifest) == _comparable(whole.manifest)
    assert _files(merged.root) == _files(whole.root)


def test_render_failures_follow_the_kept_songs(built, tmp_path):
    """A shard's failed sample is reported by the merge only when its song is kept."""
    shards, dups = built["shards"], built["dups"]
    merged, report = merge_shards([s.root for s in shards], tmp_path / "clean")
    (dropped,) = report["dropped_duplicates"]
    kept_song = merged.samples[0].song_id
    dirs = []
    for k, s in enumerate(shards):
        def add_failures(m, k=k):
            for song_id in (kept_song, dropped["song_id"]):
                if any(r["song_id"] == song_id for r in m["songs"]):
                    m["shard"]["render_failures"].append(
                        {"sample_id": f"zz-{song_id}", "song_id": song_id, "reason": "sheet: x"})
        dirs.append(_copy(s.root, tmp_path / f"failed{k}", add_failures))
    again, _ = merge_shards(dirs, tmp_path / "failed")
    assert again.report["render_failures"] == [
        {"sample_id": f"zz-{kept_song}", "reason": "sheet: x"}]
