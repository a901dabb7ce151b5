from . import WordFreq


def test_counts_words_without_stopwords():
    globals = {"stopwords": frozenset({"the", "and"})}
    result = WordFreq.apply("the cat and the hat and the cat", globals)
    assert result == {"total": 3, "top": [["cat", 2], ["hat", 1]]}
