"""The cltab parser: every rule and every error."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster_init import cltab
from cluster_init.errors import CltabError

from cltab_master import master_cltab


def problems(text):
    with pytest.raises(CltabError) as caught:
        cltab.parse(text, "/etc/cltab")
    return caught.value.problems


def test_master_cltab_parses(tmp_path):
    table = cltab.parse(master_cltab(str(tmp_path)), "cltab.master")
    assert len(table.entries) == 22
    assert table.groups() == ("hellogrp", "pidgrp", "foogrp", "bargrp", "bazgrp", "scramjet", "test")
    assert table.setting("socket") == str(tmp_path / "clinit.s")
    hello1 = table.entries[0]
    assert (hello1.group, hello1.tag, hello1.levels, hello1.mode) == ("hellogrp", "hello1", "1", "wait")
    assert hello1.line == 10


def test_comments_and_blank_lines_are_skipped():
    table = cltab.parse("# a comment\n\n   \n  # indented comment\ng:t:1:wait:true\n")
    assert [entry.line for entry in table.entries] == [5]


def test_command_keeps_its_colons():
    (entry,) = cltab.parse("g:t:1:once:echo a:b:c; date +%H:%M\n").entries
    assert entry.command == "echo a:b:c; date +%H:%M"


def test_settings_and_override_alias():
    table = cltab.parse(":::socket:/tmp/a.s\n::override:clstat:/tmp/clstat\n:::log:/tmp/x:y\n")
    assert table.settings == {"socket": "/tmp/a.s", "clstat": "/tmp/clstat", "log": "/tmp/x:y"}
    assert table.entries == ()


def test_setting_defaults():
    table = cltab.parse("")
    assert table.setting("socket") == "/var/run/clinit/clinit.s"
    assert table.setting("clstat") == "/var/run/clinit/clstat"
    assert table.setting("socket", "/given.s") == "/given.s"
    assert cltab.parse(":::socket:/mine.s\n").setting("socket", "/given.s") == "/mine.s"


def test_numeric_settings():
    table = cltab.parse(":::term_delay:0.5\n:::respawn_limit:3\n")
    assert table.setting("term_delay") == 0.5 and table.setting("respawn_limit") == 3
    assert problems(":::term_delay:soon\n") == [(1, "setting term_delay wants a number of seconds, not 'soon'")]
    assert problems(":::kill_delay:-1\n") == [(1, "setting kill_delay must not be negative")]


@pytest.mark.parametrize("mode", cltab.MODES)
def test_every_mode_is_accepted(mode):
    (entry,) = cltab.parse(f"g:t:1:{mode}:true\n").entries
    assert entry.mode == mode


def test_levels_single_characters():
    (entry,) = cltab.parse("g:t:12:once:true\n").entries
    assert entry.has_level("1") and entry.has_level("2") and entry.has_level("12")
    assert not entry.has_level("3")


def test_levels_multi_character():
    entries = cltab.parse("g:a:long1,long2,5:wait:true\ng:b:long3,:wait:true\n").entries
    a, b = entries
    assert a.has_level("long1") and a.has_level("long2") and a.has_level("5")
    assert not a.has_level("l") and not a.has_level("long3")
    assert b.has_level("long3") and not b.has_level("l")


def test_an_entry_runs_at_its_levels_unless_it_is_off():
    on, off = cltab.parse("g:a:12:once:true\ng:b:12:off:true\n").entries
    assert on.runs_at("1") and on.runs_at("12") and not on.runs_at("3")
    assert off.has_level("1") and not off.runs_at("1"), "an off entry runs at no level"


def test_level_and_group_zero_are_ordinary():
    (entry,) = cltab.parse("0:t:0:wait:true\n").entries
    assert entry.group == "0" and entry.has_level("0")


def test_unknown_mode():
    assert problems("g:t:1:sometimes:true\n") == [
        (1, "unknown mode 'sometimes' (known: wait, once, respawn, test, off)")
    ]


def test_too_few_fields():
    assert problems("g:t:1:wait\n") == [(1, "expected group:tag:levels:mode:command, found 4 field(s)")]


@pytest.mark.parametrize(
    "line, message",
    [
        (":t:1:wait:true", "empty group"),
        ("g::1:wait:true", "empty tag"),
        ("g:t::wait:true", "empty levels"),
        ("g:t:1:wait:", "empty command"),
        ("g:t:1:wait:   ", "empty command"),
        ("my group:t:1:wait:true", "group 'my group' contains whitespace or a control character"),
        ("g:t:1 2:wait:true", "levels '1 2' contains whitespace or a control character"),
        ("g:my tag:1:wait:true", "tag 'my tag' contains whitespace or a control character"),
        ("g:t\x01:1:wait:true", "tag 't\\x01' contains whitespace or a control character"),
    ],
)
def test_field_errors(line, message):
    assert problems(line + "\n") == [(1, message)]


def test_duplicate_tag_names_both_lines():
    assert problems("g:t:1:wait:true\nh:u:1:wait:true\ng:t:2:once:false\n") == [
        (3, "duplicate tag 't' (first used on line 1)")
    ]


def test_every_bad_line_is_reported_at_once():
    text = "\n".join(
        [
            "# fine",
            "g:ok:1:wait:true",
            "g:bad1:1:never:true",
            "g:bad2:1",
            "g:ok:2:wait:true",
            ":::term_delay:x",
            ":t:1:wait:",
        ]
    )
    with pytest.raises(CltabError) as caught:
        cltab.parse(text, "/etc/cltab")
    error = caught.value
    assert [line for line, _ in error.problems] == [3, 4, 5, 6, 7, 7]
    rendered = str(error).splitlines()
    assert rendered[0] == "/etc/cltab:3: unknown mode 'never' (known: wait, once, respawn, test, off)"
    assert all(line.startswith("/etc/cltab:") for line in rendered)


def test_load_missing_file(tmp_path):
    with pytest.raises(CltabError, match="cannot read"):
        cltab.load(str(tmp_path / "nope"))


def test_settings_only_ignores_entry_errors():
    table = cltab.parse(":::socket:/s\ngarbage line\n", entries=False)
    assert table.setting("socket") == "/s" and table.entries == ()


def test_entries_of_keeps_file_order(tmp_path):
    table = cltab.parse(master_cltab(str(tmp_path)))
    assert [e.tag for e in table.entries_of("test")] == [f"test{i}" for i in range(1, 7)]


names = st.text(alphabet=st.characters(blacklist_characters=":\n\r#", blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cf", "Cn", "Co", "Cs")), min_size=1, max_size=8)


@given(group=names, tag=names, levels=names, mode=st.sampled_from(cltab.MODES), command=st.text(min_size=1).filter(lambda c: c.strip() and "\n" not in c and "\r" not in c and "\0" not in c and c == c.strip()))
def test_round_trip(group, tag, levels, mode, command):
    line = f"{group}:{tag}:{levels}:{mode}:{command}"
    if line.startswith(":::") or line.startswith("::override:") or any(c.isspace() for c in group + levels):
        return
    (entry,) = cltab.parse(line + "\n").entries
    assert (entry.group, entry.tag, entry.levels, entry.mode, entry.command) == (group, tag, levels, mode, command)
    assert entry.has_level(levels)


def test_a_nul_in_a_command_is_refused():
    assert problems("g:t:1:wait:echo a\0b\n") == [(1, "command contains a NUL character (it would end the command there)")]


def test_invisible_characters_in_names_are_refused():
    assert problems("g:t:up\u200b:wait:true\n") == [(1, "levels 'up\\u200b' contains whitespace or a control character")]


def test_boot_lines_are_not_settings():
    table = cltab.parse(
        ":::boot:web:run\n::override:boot:db:1\nweb:a:run:once:x\ndb:b:12:respawn:y\n", "ct"
    )
    assert table.boot == (("web", "run"), ("db", "1"))
    assert "boot" not in table.settings and table.warnings == ()


def test_bad_boot_lines_are_errors_at_their_lines():
    text = (
        ":::boot:web:run\n"
        ":::boot:web:run\n"
        ":::boot:nosuch:1\n"
        ":::boot:web\n"
        ":::boot:db:stop\n"
        ":::boot:db:o\n"
        ":::boot:d b:1\n"
        "web:a:run:once:x\n"
        "db:b:12:respawn:y\n"
        "db:c:o:off:y\n"
    )
    with pytest.raises(CltabError) as caught:
        cltab.parse(text, "ct")
    assert caught.value.problems == [
        (2, "boot: group 'web' has a boot level already (line 1)"),
        (3, "boot: no group 'nosuch' in this cltab"),
        (4, "boot: GROUP:LEVEL wanted, not 'web'"),
        (5, "boot: group 'db' has no entries at level 'stop'"),
        (6, "boot: group 'db' has no entries at level 'o'"),
        (7, "boot: group 'd b' contains whitespace or a control character"),
    ]


def test_a_client_reads_boot_lines_without_a_warning():
    from cluster_init.settings import scan

    assert scan(":::boot:web:run\n:::socket:/s\n", "ct") == ({"socket": "/s"}, [])
