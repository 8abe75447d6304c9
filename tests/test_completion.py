"""The completer is a pure function of the text before the cursor."""

from __future__ import annotations

from drgn_mmtools.commands import COMMANDS
from drgn_mmtools.frontends.completion import CompletionData, complete

PIDS = [(1, "init"), (41, "pcc_retry"), (42, "pccfs_retry"), (420, "other")]
PATHS = ["/tmp/", "/mnt/", "/dev/"]


def data(**kw) -> CompletionData:
    return CompletionData(commands=COMMANDS, other_commands=["bt", "ps", "crash", "help", "py"],
                          checks=["mapping-mismatch", "fault-retry", "dax-entries"],
                          pids=lambda: PIDS,
                          paths=lambda prefix: [p for p in PATHS if p.startswith(prefix)],
                          findings=lambda: ["first finding", "second finding"],
                          help_topics=("py", "exit"), **kw)


def texts(text: str) -> list[str]:
    return [c.text for c in complete(text, data())]


def test_command_names_from_our_commands_and_drgns():
    assert "page" in texts("pa") and "pte" not in texts("pa")
    assert texts("b") == ["bt"]
    assert set(texts("")) >= set(COMMANDS) | {"bt", "ps"}


def test_command_names_after_a_structured_pipe():
    assert texts("findings --check fault-retry | pa") == ["page", "pagetable-sanity"]
    assert "vma" in texts("tasks --stuck | v")


def test_options_come_from_the_argparse_declarations():
    assert "--nodes" in texts("xa 0x1 --n")
    assert "--phys" in texts("page --")
    assert "--format" in texts("vma --f")
    # fault-retry's own arguments, declared on the check
    assert {"--interval", "--samples", "--min-fault-rate"} <= set(texts("fault-retry --"))


def test_option_values_choices_and_checks():
    assert texts("findings --severity w") == ["warning"]
    assert texts("findings --check da") == ["dax-entries"]
    assert texts("page 1 --format j") == ["json"]
    assert texts("check fa") == ["fault-retry"]


def test_pids_show_their_comm():
    got = complete("vma 4", data())
    assert [(c.text, c.meta) for c in got] == [("41", "pcc_retry"), ("42", "pccfs_retry"),
                                              ("420", "other")]
    assert all(c.replace == 1 for c in got)
    assert texts("pte 4") == ["41", "42", "420"]
    assert texts("pte 41 0x7f") == []  # the address is not completed


def test_paths_findings_and_help_topics():
    assert texts("xa /t") == ["/tmp/"]
    assert texts("inode ") == ["/"]
    assert texts("show ") == ["1", "2"]
    assert [c.meta for c in complete("show 2", data())] == ["second finding"]
    assert "page" in texts("help pa") and texts("help ex") == ["exit"]


def test_a_replacement_covers_the_word_under_the_cursor():
    (c,) = complete("findings --check dax-e", data())
    assert c.replace == len("dax-e")
    assert complete("nosuch --x", data()) == []
    assert complete("page 'unterminated", data()) == []
