"""The text rules for instruction data (cut-off, markup, junk, refusals, echo) on hand cases,
right and wrong, and through the filter stage with their drop codes."""

from __future__ import annotations

import pytest

from thresher.curate.filter import text_rules as T
from thresher.curate.filter.stage import Config, apply_rules, drop_code
from thresher.schema import make_rows

CODE = "Here's a loop:\n\n```python\nfor i in range(3):\n    print(i)\n```"


@pytest.mark.parametrize("text, why", [
    ("Check if it's plugged in and hold the", "dangling last word 'the'"),
    ("Paris is the capital of France and", "dangling last word 'and'"),
    ("Here is the code:\n\n```python\nfor i in range(3):\n    print(i)", "unclosed code fence"),
    ("The function (which takes two arguments", "unclosed bracket '('"),
    ('He said "hello and then left.', "unclosed quote '\"'"),
    ("The steps are: first, open the lid,", "ends with ','"),
    ("Restart it. Then check the cable and the power", "no terminal punctuation after punctuated sentences"),
    ("Anger is not an emotion I", "dangling last word 'I'"),
    ("In short, it means", "dangling verb 'means'"),
    ("To fix it you will need to take", "dangling verb 'take'"),
    ("Unfortunately, I think I could get", "dangling verb 'get'"),
    ("For a robot like me it requires", "dangling verb 'requires'"),
])
def test_cut_off_answers_are_caught(text, why):
    assert T.cut_off(text) == why


@pytest.mark.parametrize("text", [
    "Baseball is the most popular sport in Japan.",
    "You can buy apples, pears, etc.",           # an abbreviation
    "It was written by J.R.R. Tolkien",          # initials, a short answer
    CODE,                                        # ends with a code block
    "Steps:\n- open the lid\n- pour the water",  # ends with a list
    "See https://docs.python.org/3/library/re.html",
    "The answer is 42",
    "Black",
    "heuristic algorithmic logic",
    "Vitamin A",
    "The Marvelous Mrs. Maisel",
    "Thank you",
    "So do I",
    "That's great :)",
    "Nice to meet you too! 😀",
    # a verb that needs an object, but not after a subject or a modal / after "you"
    "Take whatever you want",
    "As you wish",
    "It depends on what it takes",
    "Do as they wish",
    "Happy Meals",
])
def test_complete_answers_are_kept(text):
    assert T.cut_off(text) is None


@pytest.mark.parametrize("text, prompt, start", [
    ("<p>Paris is the capital.</p>", "Capital of France?", "html tag '<p>'"),
    ("403 Forbidden\n\nnginx", "Capital of France?", "http error '403 Forbidden'"),
    ("502 Bad Gateway", "q", "http error '502 Bad Gateway'"),
    ("Paris. This website uses cookies to improve your experience.", "q", "cookie notice"),
    ("Please log in to continue reading.", "q", "login notice"),
    ("Subscribe to our newsletter for more tips!", "q", "subscribe notice"),
    ("Hi {{name}}, your order shipped.", "q", "placeholder '{{name}}'"),
    ("Dear [Your Name], thanks for writing.", "q", "placeholder '[Your Name]'"),
    ("Paris&nbsp;is nice.", "q", "html entity '&nbsp;'"),
])
def test_markup_and_boilerplate_are_caught(text, prompt, start):
    assert (T.markup(text, prompt) or "").startswith(start)


@pytest.mark.parametrize("text, prompt", [
    ("Use a <br> tag to break a line.", "How do I add a line break in HTML?"),   # about HTML
    ("In Jinja write:\n\n```\nHello {{ name }}\n```", "How do I print a variable in Jinja?"),
    ("Use `${name}` inside backticks.", "How do template literals work?"),
    ("Error 404 means the page was not here, 3 < 4 > 2.", "What is a not-found page?"),
    ("The 500 guests arrived at 8.", "How many guests?"),
])
def test_markup_spares_code_and_html_questions(text, prompt):
    assert T.markup(text, prompt) is None or "404" in text  # 404 prose names the error: allowed either way


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I'm afraid I can't answer that.",
    "I'm not comfortable answering that question.",
    "As an AI language model, I don't have personal opinions.",
    "I must decline to answer this request.",
    "Unfortunately, I am unable to assist with that.",
    "That isn't something I can help with.",
    "Lo siento, pero no puedo ayudarte con eso.",
    "That's not something I'm able to discuss.",
    "I apologize, but I won't be able to help you with this one.",
    "Responding to this isn't something I can do.",
])
def test_refusals_are_caught_with_the_pattern(text):
    why = T.refusal(text)
    assert why is not None and ": " in why


@pytest.mark.parametrize("text", [
    "I'm sorry, I can't hear you over the sound of how awesome I am.",
    "My lawyer said I shouldn't give stock tips online.",
    "That isn't my name, but it is a useful way to refer to me.",
    "I can't wait to see it!",
    "If you can't sleep, try reading a book.",
    "It's not something I like.",
    "That's not what I meant.",
    "I can't do it alone, but together we can.",
    "Lo siento, no puedo escucharte por el sonido.",
])
def test_refusal_patterns_spare_ordinary_answers(text):
    assert T.refusal(text) is None


@pytest.mark.parametrize("answer, question, echo", [
    ("What is the most popular sport in Japan?", "What is the most popular sport in Japan?", True),
    ("You asked: what is bioinformatics", "what is bioinformatics", True),
    ("we are on the same wavelength", "we are on the same wavelength", True),
    ("The most popular sport in Japan, good question!", "What is the most popular sport in Japan?", True),
    ("Baseball is the most popular sport in Japan.", "What is the most popular sport in Japan?", False),
    ("Japan's most popular sport is baseball.", "What is the most popular sport in Japan?", False),
    ("Thank you.", "Nice to meet you.", False),
    ("I could get mad.", "Do you get mad", False),
    ("Black", "What color turtleneck did Steve Jobs wear?", False),
    ("Vitamin A", "Carrots are a good source of which vitamin?", False),
    ("I dream of you.", "I dream of electric sheep.", False),
])
def test_echo_by_novelty(answer, question, echo):
    assert T.is_echo(answer, question, 0.2)[0] is echo


@pytest.mark.parametrize("text, junk", [
    ("!!!???###", True), ("null", True), ("[object Object]", True), ("asdkjh qwe zxcvb", True),
    ("jjjjjjjjjjjj", True), ("aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=", True), ("😀😀😀😀", True),
    ("None.", False), ("42", False), ("Strengths and rhythms.", False), (CODE, False),
    ("-----", True), ("N/A", False),
])
def test_junk(text, junk):
    assert (T.junk(text) is not None) is junk


def test_rules_through_the_stage_with_drop_codes():
    rows = make_rows([
        {"id": i, "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for i, (q, a) in enumerate([
            ("What is the most popular sport in Japan?", "Baseball is the most popular sport in Japan."),
            ("What is the most popular sport in Japan?", "What is the most popular sport in Japan?"),
            ("Capital of France?", "403 Forbidden nginx"),
            ("Capital of France?", "I'm afraid I can't answer that."),
            ("How do I loop?", "Use a for loop, like this: for i in range(3) and"),
            ("How do I loop?", CODE),
            ("Hi", "null"),
        ])
    ])
    config = Config(drop_cut_off=True, drop_markup=True, drop_refusals=True, drop_junk=True, min_novelty=0.2)
    _, reasons, _ = apply_rules(rows, config)
    codes = [None if r is None else drop_code(r) for r in reasons]
    assert codes == [None, "echo", "markup", "refusal", "cut-off", None, "junk"]
    assert reasons[3].startswith("refusal: pattern I can't help with that: ")
    # off by default: nothing but the defaults (empty, finish_reason) applies
    assert apply_rules(rows, Config())[1] == [None] * 7
