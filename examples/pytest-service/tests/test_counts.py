from conftest import run_wc


def test_empty_input(wc_binary):
    assert run_wc(wc_binary, "") == (0, ["0", "0", "0"])


def test_counts_words_and_lines(wc_binary):
    assert run_wc(wc_binary, "one two\nthree\n") == (0, ["2", "3", "14"])


def test_tabs_separate_words(wc_binary):
    assert run_wc(wc_binary, "a\tb\tc\n") == (0, ["1", "3", "6"])
