"""Conversations and candidate responses used for golden values (shared by the scripts)."""

CTRL = "\x1c\x1d\x1e\x1f"

# (messages, responses): varied on purpose — roles, multi-turn, unicode, empty and
# whitespace-only content, control characters that Python's str.strip() removes, and special
# token text inside content.
CASES = [
    ([{"role": "user", "content": "What is the capital of France?"}],
     ["Paris.", "The capital of France is Paris.", "Lyon", ""]),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}],
     ["4", "four", "2+2 equals 4, of course."]),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
      {"role": "user", "content": "Tell me a joke."}],
     ["Why did the chicken cross the road?", "No."]),
    ([{"role": "user", "content": "翻译：我喜欢猫。"}], ["I like cats.", "我喜欢猫 = I like cats 🐱"]),
    ([{"role": "user", "content": "مرحبا، كيف حالك؟"}], ["أنا بخير، شكرا!", "I'm fine 😊"]),
    ([{"role": "user", "content": "   padded question   "}], ["  padded answer  ", "\n\nnewlines\n\n"]),
    ([{"role": "user", "content": ""}], ["", " ", "empty prompt answer"]),
    ([{"role": "system", "content": "   "}, {"role": "user", "content": "\t"}], ["\t\t", "tab"]),
    ([{"role": "user", "content": CTRL + "control chars" + CTRL}], [CTRL + "answer" + CTRL, "plain"]),
    ([{"role": "user", "content": "Say <|eot_id|> please"}], ["<|eot_id|>", "I said <|eot_id|> twice <|eot_id|>"]),
    ([{"role": "user", "content": "Code?"}], ["```python\nprint('hi')\n```", "def f(x):\n    return x * 2"]),
    ([{"role": "system", "content": "Be helpful.\n"}, {"role": "user", "content": "List three colours."},
      {"role": "assistant", "content": "Red, green, blue."}, {"role": "user", "content": "Another three?"}],
     ["Cyan, magenta, yellow.", "Purple, orange and teal!", "no"]),
    ([{"role": "user", "content": "Numbers: 1234567890 3.14159 -42"}], ["12345", "3.14", "−42 (minus)"]),
    ([{"role": "user", "content": "Émojis 👩‍👩‍👧‍👦 and accents: café naïve"}], ["Ça va 👍", "ok"]),
    ([{"role": "user", "content": "a" * 300}], ["b" * 200, "a"]),
    ([{"role": "user", "content": "Why?"}], ["Because.", "Because!", "Because?", "Because..."]),
    ([{"role": "user", "content": "line1\r\nline2\rline3"}], ["crlf\r\nok", "mixed\r\n\n\r"]),
    ([{"role": "user", "content": "\u00a0nbsp and \u2003em space\u3000"}], ["\u00a0x\u00a0", "\u2028sep\u2029"]),
    ([{"role": "system", "content": "Only JSON."}, {"role": "user", "content": "Give an object."}],
     ['{"a": 1}', "{'a': 1}", "not json"]),
    ([{"role": "user", "content": "<|start_header_id|>user<|end_header_id|>"}], ["<|begin_of_text|>", "x"]),
    ([{"role": "tool_result", "content": "custom role"}, {"role": "user", "content": "ok?"}], ["fine"]),
    ([{"role": "user", "content": "Ünïcödé ẞ ǅ ﬁ"}], ["ﬁne", "FINE"]),
    ([{"role": "user", "content": "Short"}], ["y"]),
    ([{"role": "user", "content": "Tab\tinside\tcontent"}], ["a\tb", "\ta"]),
    ([{"role": "user", "content": "Question with trailing spaces?    "}, {"role": "assistant", "content": "  Sure  "},
      {"role": "user", "content": "  and leading"}], ["done", " done "]),
    ([{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 6}],
     ["A pangram repeated six times.", "Yes."]),
]
