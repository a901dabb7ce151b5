import re
from collections import Counter

import Algorithmia
from Algorithmia import ADK

# Made once, when the algorithm starts; the platform sets ALGORITHMIA_API and its key.
client = Algorithmia.client()

STOPWORDS_FILE = "data://demo/wordfreq/stopwords.txt"


def load():
    # Runs once, before the first call: the stop words live in the author's hosted data.
    words = client.file(STOPWORDS_FILE).getString().split()
    return {"stopwords": frozenset(word.lower() for word in words)}


def apply(input, globals):
    """Count the words of a text, or of a hosted text file named by its data:// URI.

    Input: "some text", "data://owner/collection/file.txt", or
    {"text" | "uri": ..., "top": 10}. Output: {"total": n, "top": [[word, count], ...]}.
    """
    if isinstance(input, str):
        input = {"uri": input} if input.startswith("data://") else {"text": input}
    if not isinstance(input, dict):
        raise TypeError("input is a text, a data:// URI, or {'text' or 'uri': ..., 'top': n}")
    text = client.file(input["uri"]).getString() if "uri" in input else input.get("text", "")
    top = int(input.get("top", 10))
    words = [w for w in re.findall(r"[a-z']+", text.lower()) if w not in globals["stopwords"]]
    counts = Counter(words)
    return {"total": len(words), "top": [[w, n] for w, n in counts.most_common(top)]}


algorithm = ADK(apply, load)
algorithm.init("the quick brown fox jumps over the lazy dog and the quick cat")
