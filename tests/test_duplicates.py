"""Near-identical passages of different files are recognised, and the words where they differ are found."""

from __future__ import annotations

from kb.duplicates import NEAR_DUPLICATE, differences, likeness, near_duplicate, shingles

PORTAL = ("To request annual leave, submit a request in the LeaveNow portal at least two weeks in advance. "
          "Your manager approves or declines the request within three working days.")
EDITED = PORTAL.replace("two weeks", "three weeks")
PART_TIME = ("Part-time staff accrue annual leave in proportion to their contracted hours. Leave not taken "
             "by the end of the year lapses unless your manager approves carrying it over.")


def test_shingles_are_lower_cased_word_runs():
    assert shingles("The HR portal, the HR") == {("the", "hr", "portal"), ("hr", "portal", "the"), ("portal", "the", "hr")}
    assert shingles("Two words") == {("two", "words")} and shingles("") == set()


def test_one_changed_word_is_nearly_the_same_text_and_another_section_is_not():
    assert likeness(PORTAL, PORTAL) == 1.0
    assert NEAR_DUPLICATE <= likeness(PORTAL, EDITED) < 1.0  # 30 words, one changed: about 0.9
    assert near_duplicate(PORTAL, EDITED) and near_duplicate(EDITED, PORTAL)
    assert likeness(PORTAL, PART_TIME) < 0.1 and not near_duplicate(PORTAL, PART_TIME)  # same policy, same words
    assert not near_duplicate(PORTAL, "") and likeness("", "") == 0.0
    assert not near_duplicate(PORTAL, "Ask your manager.") and near_duplicate("Ask your manager.", "ask your Manager")
    # cut at other places (the chunks of two files need not start alike): still the same text
    assert near_duplicate("Leave policy. " + PORTAL, PORTAL.rsplit(". ", 1)[0])


def test_differences_name_the_changed_words_but_not_a_different_cut():
    assert differences(PORTAL, EDITED) == [("two", "three")]
    assert differences("Leave policy. " + PORTAL, EDITED + " Ask HR.") == [("two", "three")]
    assert differences(PORTAL, PORTAL) == []
    assert differences("Pay within 30 days of the claim.", "Pay 30 days after the claim.") == [
        ("within", ""), ("of", "after"),
    ]
