"""The citation check: each cited sentence against the passages it cites."""

from kb.claims import Claim, check_claims, split_sentences, unsupported

LEAVE = ("Annual leave is requested in the HR portal at least two weeks ahead. Your manager approves "
         "the request within 5 working days. Part-time staff accrue 12.5 days per year.")
TRAVEL = "Travel over $4,500 needs the approval of the Finance Director, Maria Lopez, before booking."


def only(answer: str, passages: dict[int, str]) -> Claim:
    (claim,) = check_claims(answer, passages)
    return claim


def test_a_sentence_that_restates_its_passage_is_supported():
    claim = only("Your manager approves leave requests within 5 working days [1].", {1: LEAVE})
    assert claim.supported and claim.reason == "" and claim.cited == (1,)
    assert claim.text == "Your manager approves leave requests within 5 working days."
    assert {"manager", "5", "days"} <= set(claim.support_words)


def test_a_number_that_is_not_in_the_passage_is_flagged_with_it_named():
    claim = only("Your manager approves leave requests within 7 working days [1].", {1: LEAVE})
    assert not claim.supported and claim.reason == "7 is not in [1]"


def test_numbers_match_in_their_usual_forms():
    assert only("Travel above 4500 dollars needs the Finance Director's approval [1].", {1: TRAVEL}).supported
    assert only("Part-time staff accrue 12.50 days of leave per year [1].", {1: LEAVE}).supported


def test_a_name_that_is_not_in_the_passage_is_flagged():
    claim = only("Travel over $4,500 needs the approval of John Smith [1].", {1: TRAVEL})
    assert not claim.supported and claim.reason == "John is not in [1]"


def test_a_sentence_about_something_else_is_flagged_by_its_content_words():
    claim = only("Employees receive a free gym membership and parking [1].", {1: LEAVE})
    assert not claim.supported and claim.reason.startswith("only 0 of its")


def test_a_marker_pointing_at_no_passage_is_flagged():
    claim = only("Leave is requested in the HR portal [3].", {1: LEAVE})
    assert not claim.supported and "[3]" in claim.reason and "not among the passages" in claim.reason


def test_a_sentence_citing_two_passages_may_draw_on_both():
    answer = "Leave goes through the HR portal and travel over $4,500 needs Maria Lopez [1][2]."
    claim = only(answer, {1: LEAVE, 2: TRAVEL})
    assert claim.supported and claim.cited == (1, 2)
    assert not only("Travel over $4,500 needs Maria Lopez [1].", {1: LEAVE, 2: TRAVEL}).supported


def test_only_sentences_with_markers_are_claims_and_their_place_is_kept():
    answer = "Here is what the handbook says. Leave is requested in the HR portal [1]. Ask HR if unsure."
    claims = check_claims(answer, {1: LEAVE})
    assert [c.text for c in claims] == ["Leave is requested in the HR portal."]
    assert answer[claims[0].start:claims[0].end] == "Leave is requested in the HR portal [1]."


def test_markers_after_the_full_stop_stay_with_their_sentence():
    answer = "Leave is requested in the HR portal. [1] Your manager approves it. [1]"
    assert [answer[s:e] for s, e in split_sentences(answer)] == [
        "Leave is requested in the HR portal. [1]", "Your manager approves it. [1]"]
    assert [c.supported for c in check_claims(answer, {1: LEAVE})] == [True, True]


def test_an_extractive_quote_is_supported_by_construction():
    sentences = [LEAVE[s:e] for s, e in split_sentences(LEAVE)] + [TRAVEL]
    answer = " ".join(f"{s} [{1 + (s == TRAVEL)}]" for s in sentences)
    claims = check_claims(answer, {1: LEAVE, 2: TRAVEL})
    assert len(claims) == 4 and unsupported(claims) == []


def test_accents_and_curly_apostrophes_do_not_break_a_match():
    passage = "The Café Müller’s kitchen opens at 7:30."
    assert only("Cafe Müller's kitchen opens at 7:30 [1].", {1: passage}).supported


def test_each_claim_names_the_sentence_of_its_passage_that_backs_it():
    passage = ("Leave Policy\nEmployees get two weeks of paid leave after one year of service, a line long enough\n"
               "to wrap onto the next one.\nPart-time staff\nPart-time staff get leave pro rata to their hours.\n"
               "| Plan | 2023 | 2024 |\n| Gold | 4,500 | 5,000 |")
    answer = "Part-time staff get leave pro rata [1]. The Gold plan cost 5,000 in 2024 [1]. Staff get two weeks [1]."
    part_time, gold, weeks = check_claims(answer, {1: passage})
    [(n, start, end)] = part_time.evidence
    assert n == 1 and passage[start:end] == "Part-time staff get leave pro rata to their hours."
    assert [passage[s:e] for _, s, e in gold.evidence] == ["| Gold | 4,500 | 5,000 |"]  # a table row is one
    [(_, start, end)] = weeks.evidence
    assert passage[start:end].startswith("Employees get two weeks") and passage[start:end].endswith("next one.")


def test_a_claim_citing_a_missing_passage_has_no_evidence():
    [claim] = check_claims("Leave is two weeks [4].", {1: "Leave is two weeks."})
    assert claim.evidence == () and not claim.supported


def test_a_blank_line_ends_a_claim():
    answer = "(Extractive answer: sentences quoted from your documents.)\n\nLeave is two weeks. [1]"
    [claim] = check_claims(answer, {1: "Leave is two weeks."})
    assert claim.text == "Leave is two weeks." and answer[claim.start:claim.end] == "Leave is two weeks. [1]"
