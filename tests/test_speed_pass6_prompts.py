"""The overview block made once per overview (issue 16, sixth pass): every step of every run at one commit, and
each run's estimate, share the text; another overview or another repository never gets it."""

from __future__ import annotations

import dataclasses

from bot.agents import prompts
from bot.agents.request import RepoOverview
from tests.test_agents_common import OVERVIEW


def test_one_overview_is_made_into_text_once_and_kept() -> None:
    first = prompts.overview_text("o/r", OVERVIEW)
    assert prompts.overview_text("o/r", OVERVIEW) is first, "made again"
    assert first == prompts._overview_text("o/r", OVERVIEW)


def test_another_repository_or_commit_gets_its_own_text() -> None:
    other_commit = dataclasses.replace(OVERVIEW, commit="d" * 40)
    here, there = prompts.overview_text("o/r", OVERVIEW), prompts.overview_text("o/other", OVERVIEW)
    assert "Repository o/r at commit" in here and "Repository o/other at commit" in there
    moved = prompts.overview_text("o/r", other_commit)
    assert "d" * 40 in moved and "c" * 40 not in moved
    assert prompts.overview_text("o/r", OVERVIEW) == here


def test_the_kept_texts_are_bounded() -> None:
    overviews = [RepoOverview(commit=f"{i:040x}", paths=("a.py",), truncated=False, readme=None, contributing=None)
                 for i in range(prompts.MAX_OVERVIEW_TEXTS * 2)]
    for overview in overviews:
        assert overview.commit in prompts.overview_text("o/r", overview)
    assert len(prompts._OVERVIEW_TEXTS) == prompts.MAX_OVERVIEW_TEXTS
    assert overviews[-1].commit in prompts.overview_text("o/r", overviews[-1])
