"""`runs.run_dir`: a new run that fails before its first checkpoint leaves no run behind."""

from __future__ import annotations

from conftest import pretrain_args

from pretrain.run import main as pretrain_main


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        pretrain_main([*pretrain_args(corpus, out, tmp_path / "cache"), "--dataset", str(tmp_path / "no")])
        == 1
    )
    assert "no" in capsys.readouterr().err and not out.exists()
    kept = tmp_path / "theirs"
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's own file")
    assert (
        pretrain_main([*pretrain_args(corpus, kept, tmp_path / "cache"), "--dataset", str(tmp_path / "no")])
        == 1
    )
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_a_new_run_never_deletes_the_users_files_without_overwrite(corpus, tmp_path, capsys):
    """Issue 27 item 1: `plots/fig.png` of the user's survived neither a new run nor a failed one."""
    kept = tmp_path / "theirs"
    (kept / "plots").mkdir(parents=True)
    (kept / "plots" / "fig.png").write_bytes(b"the user's figure")
    assert pretrain_main(pretrain_args(corpus, kept, tmp_path / "cache")) == 1
    err = capsys.readouterr().err
    assert "plots/" in err and "--overwrite" in err
    assert (kept / "plots" / "fig.png").read_bytes() == b"the user's figure"
    assert sorted(p.name for p in kept.iterdir()) == ["plots"]
