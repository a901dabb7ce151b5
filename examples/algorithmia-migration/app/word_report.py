"""A client application, as it ran against Algorithmia: upload a text, ask WordFreq about it.

    ALGORITHMIA_API=https://api.algorithmia.com ALGORITHMIA_API_KEY=sim... \
        python word_report.py speech.txt

Only the two environment variables change when it moves to Algora.
"""

import os
import sys
from pathlib import Path

import Algorithmia

client = Algorithmia.client(os.environ["ALGORITHMIA_API_KEY"], os.environ["ALGORITHMIA_API"])

texts = client.dir("data://.my/texts")
if not texts.exists():
    texts.create()
path = sys.argv[1]
remote = "data://.my/texts/" + Path(path).name
client.file(remote).putFile(path)

algo = client.algo("demo/WordFreq/1.0.x")
algo.set_options(timeout=60)
response = algo.pipe({"uri": remote, "top": 3})
print(f"{response.result['total']} words; most frequent:")
for word, count in response.result["top"]:
    print(f"  {word}: {count}")
