"""Guards of converging reviews and their tech debt, each pinned: a copied file keeps its source's findings where
they are; a tech-debt issue closed with no reason is a person's decision and is not filed again; the public marker
of a tech-debt issue is keyed by the App (a finding id made from a credential must not let a dictionary find it),
and an issue filed under the unkeyed marker of before is still found. End to end through the webhook against the
sandbox where the behaviour is; the pure parts as unit tests."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from bot.core import findings as F
from bot.core.markers import markers_in, trailing
from bot.github.writes import digest
from bot.run.merged import debt_marker, finding_key
from bot.sandbox.team import Team
from tests.conftest import SECRET
from tests.test_attacks_today import close, filed, merge_with_key
from tests.test_converging_reviews import debt_issues
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

CRED = F.Tracked("0123456789abcdef", F.CHECK, "credential:AWS access key id", "critical", "exposed credential",
                 "app/client.py", 1, F.OPEN, "a" * 40, "a" * 40)


def test_a_copied_file_leaves_its_sources_findings_in_the_source() -> None:
    """GitHub gives a ``copied`` file a ``previous_filename`` too; the source is still there, findings and all."""
    files = [{"filename": "app/new.py", "status": "copied", "previous_filename": "app/keys.py"},
             {"filename": "app/moved.py", "status": "renamed", "previous_filename": "app/old.py"}]
    assert F.renames(files) == {"app/old.py": "app/moved.py"}
    key = F.Seen(F.CHECK, "credential:AWS access key id", "critical", "exposed credential", "app/keys.py", 1, "f" * 32)
    first = F.converge({}, F.identify([key], {}), "a" * 40, paths={"app/keys.py"}, changed=None, model_ran=True)
    again = F.identify([key, dataclasses.replace(key, path="app/new.py")], {}, F.renames(files))
    after = F.converge(first.findings, again, "b" * 40, paths={"app/keys.py", "app/new.py"}, changed=None,
                       model_ran=True, renamed=F.renames(files))
    assert [t.path for t in after.open()] == ["app/keys.py", "app/new.py"] and len(after.new) == 1


async def test_a_tech_debt_issue_closed_with_no_reason_is_not_filed_again(bot: Any, sandbox: Any, team: Team) -> None:
    await merge_with_key(bot, sandbox, 650)
    [n] = filed(sandbox)
    close(sandbox, n, None)  # closed by a GitHub older than state_reason, or an integration that gave none
    await merge_with_key(bot, sandbox, 652)
    assert filed(sandbox) == [n]


def test_the_debt_marker_is_keyed_by_the_app_and_changes_with_its_key() -> None:
    one, two = finding_key(SECRET), finding_key(SECRET + "x")
    assert one is not None and two is not None and one != two
    keyed = markers_in(debt_marker(REPO, CRED, key=one))[0]
    assert keyed != markers_in(debt_marker(REPO, CRED, key=two))[0]
    assert keyed != markers_in(debt_marker(REPO, CRED))[0] == f"finding-debt:{digest(REPO, CRED.id)}"
    assert digest(REPO, CRED.id) not in keyed and hashlib.sha256(CRED.id.encode()).hexdigest()[:16] not in keyed
    assert finding_key(None) is None and finding_key("") is None


async def test_the_posted_marker_is_the_keyed_one(bot: Any, sandbox: Any, team: Team,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async def keep(repo: str, number: int) -> None:  # the merge lets its findings go: kept here to read them
        return None
    monkeypatch.setattr(bot[0].deps.store, "forget_findings", keep)
    await merge_with_key(bot, sandbox, 654)
    [issue] = debt_issues(sandbox)
    [t] = [t for t in F.load((await bot[0].deps.store.load_findings(REPO, 654)).findings).values()]
    key = finding_key(bot[0].deps.settings.webhook_secret)
    assert trailing(issue["body"]) == markers_in(debt_marker(REPO, t, key=key))[0]
    assert trailing(issue["body"]) != markers_in(debt_marker(REPO, t))[0]


async def test_an_issue_filed_under_the_unkeyed_marker_of_before_is_still_found(
        bot: Any, sandbox: Any, team: Team) -> None:
    deps = bot[0].deps
    settings = deps.settings
    deps.settings = dataclasses.replace(settings, webhook_secret=None)  # filed the way markers were made before
    try:
        await merge_with_key(bot, sandbox, 656)
    finally:
        deps.settings = settings
    [n] = filed(sandbox)
    await merge_with_key(bot, sandbox, 658)  # the same credential merged again, now with keyed markers
    assert filed(sandbox) == [n]


async def test_a_rotated_webhook_secret_files_nothing_twice(bot: Any, sandbox: Any, team: Team) -> None:
    """The public marker is keyed by the webhook secret: after a rotation the keyed marker is another, and the store's
    own unkeyed note of the filed issue is what finds it."""
    await merge_with_key(bot, sandbox, 660)
    [n] = filed(sandbox)
    deps = bot[0].deps
    settings = deps.settings
    deps.settings = dataclasses.replace(settings, webhook_secret=f"{settings.webhook_secret}-rotated")
    try:
        await merge_with_key(bot, sandbox, 662)  # the same credential merged again, under the new secret
    finally:
        deps.settings = settings
    assert filed(sandbox) == [n]


def test_back_before_a_rename_two_identical_model_findings_each_keep_their_own_id() -> None:
    """A: the same model warning twice in app/a.py (lines 3 and 4); B renamed the file and its review kept them under
    new ids at lines 10 and 20. Back to A, each of A's findings is B's one: both nearest line 10, but one id cannot
    stand for two findings, or the other is left open at B's path and gone."""
    a, b = "a" * 40, "b" * 40

    def warn(fid: str, path: str, line: int) -> F.Tracked:
        return F.Tracked(fid, F.MODEL, "model:warning", "warning", "eval on input", path, line, F.OPEN, a, b)
    earlier = {t.id: t for t in (warn("b10", "lib/b.py", 10), warn("b20", "lib/b.py", 20))}
    now = F.lineage(earlier, [warn("a3", "app/a.py", 3), warn("a4", "app/a.py", 4)], {"lib/b.py": "app/a.py"})
    assert [(fid, s.aliases) for fid, s in now] == [("a3", ("b10",)), ("a4", ("b20",))]
    rnd = F.converge(earlier, now, a, paths={"app/a.py"}, changed=None, model_ran=True,
                     renamed={"lib/b.py": "app/a.py"})
    assert len(rnd.open()) == 2 and not rnd.gone and not rnd.fixed and not rnd.new
