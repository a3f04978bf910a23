"""Text rules made for instruction data: each looks at the answer (and the question) and
returns a short description of what it matched, or None.

- :func:`cut_off`: an answer that stops mid-way (an unclosed code fence, bracket or quote, a
  dangling last word such as "the" or "and", a verb that needs an object right after a
  subject or a modal ("it means", "I could get"), a trailing comma, or no terminal punctuation
  where the writer otherwise punctuates). Answers ending with an abbreviation, a code block,
  a list item, a URL, a number or an emoticon are complete.
- :func:`markup`: HTML tags and entities, HTTP error pages ("403 Forbidden", "nginx"),
  cookie / subscribe / log-in notices and templating placeholders (``{{name}}``, ``[Your
  Name]``); text inside code blocks and inline code is not looked at.
- :func:`refusal`: refusals and "as an AI" disclaimers, as patterns over the answer's first
  sentences (English first; a few Spanish, French and German forms).
- :func:`novelty`: the share of the answer's content words that the question does not
  already hold; an echo adds (almost) nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_FENCE = re.compile(r"```|~~~")
_CODE_BLOCK = re.compile(r"(```|~~~).*?(\1|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def strip_code(text: str) -> str:
    """``text`` without fenced code blocks (closed or not) and inline code spans."""
    if "`" not in text and "~~~" not in text:
        return text  # no code to strip (the patterns below need one of these)
    return _INLINE_CODE.sub(" ", _CODE_BLOCK.sub(" ", text))


# ---------------------------------------------------------------- cut-off answers

#: words a complete English sentence does not end on (articles, prepositions, conjunctions,
#: possessives, auxiliaries): an answer ending on one was cut.
DANGLING = frozenset("""
a an the and or but nor of to in on at by for from with into onto over under about as than
because although though while whereas if unless until since so which whose is are was were
be been being my your his her its our their such very some any each every including like
via per between among through during without within against toward towards upon across
it's i'm you're we're they're let's there's
""".split())

_PRONOUNS = frozenset("i we they he she".split())
#: words after which a sentence may end on a subject pronoun ("so do I", "more than we")
_PRONOUN_ENDS = frozenset("""do does did am are is was were can could will would shall should have has had
than and or so nor me too neither either""".split())
#: verbs that need an object or complement ("it means", "I could get"): an answer ending on one
#: right after a subject pronoun or a modal was cut ("if you want", "as you wish" stay: not
#: after "you")
_TRANSITIVE = frozenset("""require requires required mean means seem seems become becomes make makes take takes
get gets give gives want wants need needs wish include includes contain contains lack lacks involve
involves cause causes allow allows let lets prefer prefers enjoy enjoys consider considers""".split())
_SUBJECT_OR_MODAL = frozenset("""i he she it we they this that which who can could would will should might must
may shall cannot can't couldn't wouldn't won't shouldn't don't doesn't didn't to""".split())
_TERMINAL = set(".!?…。！？\"'”’)]}>*_~`|")
_EMOTICON = re.compile(r"(?:[:;=8][\-o^']?[()\[\]dDpP/\\|*3]|<3|\^\^|\^_\^|xD|XD)\s*$")
_URL_END = re.compile(r"(?:https?://|www\.)\S+$")
_NUMBER_END = re.compile(r"[\d%°$€£]\s*$")
_LIST_LINE = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[a-zA-Z][.)])\s+\S")
_SENTENCE_INSIDE = re.compile(
    r"(?<!\bmr)(?<!\bmrs)(?<!\bms)(?<!\bdr)(?<!\bst)(?<!\bjr)(?<!\bsr)(?<!\bvs)(?<!\betc)(?<!\bno)"
    r"(?<![\s.][a-z])(?:[.!?…]\s+\S|:\s*\n)", re.I)
_WORDS = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def _unclosed(text: str) -> str | None:
    prose = strip_code(text)
    prose = re.sub(r"[:;=8][\-o^']?[()\[\]]", " ", prose)  # emoticons are no brackets
    prose = re.sub(r"(?m)^\s*(?:\d+|[a-zA-Z])\)", " ", prose)  # "1)" list markers
    for o, c in _OPENERS.items():
        if prose.count(o) > prose.count(c):
            return f"unclosed bracket {o!r}"
    straight = prose.count('"')
    if straight % 2 == 1:
        return "unclosed quote '\"'"
    if prose.count("“") > prose.count("”"):
        return "unclosed quote '“'"
    return None


def cut_off(text: str) -> str | None:
    """Why ``text`` looks cut off mid-way (``unclosed code fence``, ``dangling last word
    'the'``, ``ends with ','`` ...), or None when it looks complete."""
    t = text.rstrip()
    if not t:
        return None
    if len(_FENCE.findall(t)) % 2 == 1:
        return "unclosed code fence"
    why = _unclosed(t)
    if why:
        return why
    if t.endswith(("```", "~~~")):
        return None
    last_line = t.splitlines()[-1]
    if t[-1] in ",;:-–—([{/\\&+=" and not _EMOTICON.search(t):
        return f"ends with {t[-1]!r}"
    if t[-1] in _TERMINAL or not t[-1].isalnum() or _EMOTICON.search(t) or _URL_END.search(t) or _NUMBER_END.search(t):
        return None
    words = _WORDS.findall(last_line)
    if not words:
        return None  # ends with a symbol or an emoji
    last = words[-1].lower().replace("’", "'")
    all_words = _WORDS.findall(strip_code(t))
    if last in DANGLING and len(all_words) >= 2 and words[-1].islower():
        return f"dangling last word {words[-1]!r}"
    if last.endswith("'s") and words[-1].islower() and len(all_words) >= 2:
        return f"dangling possessive {words[-1]!r}"
    before = all_words[-2].lower().replace("’", "'") if len(all_words) >= 2 else ""
    third = all_words[-3].lower() if len(all_words) >= 3 else ""
    if (last in _TRANSITIVE and before in _SUBJECT_OR_MODAL and words[-1].islower()
            and third not in ("what", "whatever", "as", "if", "however")):  # "what it takes"
        return f"dangling verb {words[-1]!r}"
    if last in _PRONOUNS and before not in _PRONOUN_ENDS and len(all_words) >= 3:
        return f"dangling last word {words[-1]!r}"
    if _LIST_LINE.match(last_line) or len(t.splitlines()) > 1 and last_line.strip().endswith(":"):
        return None
    # no terminal mark: a cut when the writer punctuates elsewhere, or writes long sentences
    if _SENTENCE_INSIDE.search(t) and len(all_words) >= 4:  # code blocks count: "example:\n```"
        return "no terminal punctuation after punctuated sentences"
    if len(all_words) >= 12:
        return f"no terminal punctuation after {len(all_words)} words"
    return None


# ---------------------------------------------------------------- markup and boilerplate

_TAG = re.compile(
    r"</?(?:p|div|span|br|hr|a|b|i|u|em|strong|small|ul|ol|li|dl|dt|dd|h[1-6]|table|thead|tbody|"
    r"tr|td|th|html|head|body|title|script|style|img|meta|link|iframe|form|input|button|label|"
    r"select|option|nav|footer|header|section|article|aside|main|figure|figcaption|blockquote|"
    r"center|font|noscript|svg|path|pre|code|sup|sub)(?:\s[^<>]*)?/?>", re.I)
_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|mdash|ndash|hellip|copy|reg|rsquo|lsquo|rdquo|"
                     r"ldquo|#\d{2,5}|#x[0-9a-f]{2,4});", re.I)
_HTML_TOPIC = re.compile(r"\b(?:html|xml|tag|tags|markup|css|dom|jsx|web ?page|element|svg)\b", re.I)

BOILERPLATE: tuple[tuple[str, str], ...] = (
    ("http error", r"\b(?:4\d\d|5\d\d)\s*(?:[-:|]\s*)?(?:forbidden|not found|bad request|unauthori[sz]ed|"
                   r"internal server error|bad gateway|service (?:temporarily )?unavailable|gateway time-?out|"
                   r"method not allowed|too many requests|request time-?out|gone)\b"),
    ("http error", r"\b(?:error|status)(?: code)?\s*:?\s*(?:4\d\d|5\d\d)\b(?![\d.,])"),
    ("web server", r"\b(?:nginx(?:/[\d.]+)?|apache/[\d.]+|openresty|cloudflare ray id|ray id:|iis/[\d.]+|"
                   r"varnish cache server)\b"),
    ("http error", r"\b(?:access denied|access to this (?:page|resource) (?:is|has been) (?:denied|blocked)|"
                   r"you don't have permission to access|you do not have permission to access|"
                   r"the requested url .{0,80} was not found|page (?:was )?not found|this page (?:can't|cannot) "
                   r"be (?:found|reached|displayed)|the page you (?:are|were) looking for|request (?:was )?blocked|"
                   r"server (?:error|is down)|connection (?:timed out|refused)|site can't be reached)\b"),
    ("cookie notice", r"\b(?:(?:this|our) (?:web)?site uses cookies|we use cookies|uses cookies to|"
                      r"accept (?:all )?cookies|cookie (?:policy|settings|preferences|consent|banner)|"
                      r"by continuing to (?:browse|use) (?:this|our) (?:site|website))\b"),
    ("subscribe notice", r"\b(?:subscribe (?:to|for) (?:our|the|my) (?:newsletter|channel|updates|mailing list|blog)|"
                         r"sign up for (?:our|the|my) (?:newsletter|mailing list|updates)|"
                         r"(?:join|subscribe to) our mailing list|enter your e-?mail (?:address )?(?:to|below|for)|"
                         r"don't forget to (?:like and )?subscribe|unsubscribe at any time)\b"),
    ("login notice", r"\b(?:(?:please )?(?:log|sign) ?in (?:to|or (?:sign up|register)|first to) "
                     r"(?:continue|view|read|see|comment|access|reply|post|download|your account)|"
                     r"you must be (?:logged|signed) in|create (?:a free|an|your free) account to|"
                     r"(?:forgot|reset) your password\?|already have an account\?|"
                     r"(?:log|sign) in with (?:google|facebook|apple))\b"),
    ("page chrome", r"\b(?:(?:please )?enable javascript|javascript (?:is )?(?:disabled|required)|"
                    r"your browser (?:does not|doesn't) support|skip to (?:main )?content|"
                    r"all rights reserved|copyright ©|© ?(?:19|20)\d\d|click here to (?:read|continue|"
                    r"subscribe|download|learn|see|view)|back to top|share (?:this|on) (?:article|post|facebook|twitter)|"
                    r"advertisement\s*$|lorem ipsum)"),
)
_BOILERPLATE = tuple((name, re.compile(p, re.I | re.M)) for name, p in BOILERPLATE)
_PLACEHOLDERS = (
    re.compile(r"\{\{\s*[^{}\n]{1,40}?\s*\}\}"),
    re.compile(r"\{%-?\s*[a-z]+[^%\n]{0,40}%\}"),
    re.compile(r"\$\{[A-Za-z_][\w.]{0,40}\}"),
    re.compile(r"<\s*(?:insert|your|name|placeholder|company|date|recipient)[^<>\n]{0,30}>", re.I),
    re.compile(r"\[\s*(?:insert|your|name|placeholder|company|date|recipient|first name|last name|"
               r"product|city|email|phone|address|link|url|todo|tbd)[^\]\n]{0,30}\]", re.I),
    re.compile(r"%\([a-z_]+\)[sd]|\{[a-z_]+\}(?=[^{}]*\{[a-z_]+\})|__[A-Z][A-Z_]{2,}__|\bTODO\b|\bFIXME\b|\bTBD\b"),
)


def markup(text: str, prompt: str = "") -> str | None:
    """What markup or boilerplate ``text`` holds (``html tag '<p>'``, ``http error '403
    Forbidden'``, ``placeholder '{{name}}'`` ...), or None. Code blocks and inline code are
    skipped, and HTML tags are allowed when the question is about HTML."""
    prose = strip_code(text)
    if not _HTML_TOPIC.search(prompt):
        m = _TAG.search(prose)
        if m:
            return f"html tag {m.group(0)[:40]!r}"
        m = _ENTITY.search(prose)
        if m:
            return f"html entity {m.group(0)!r}"
    for name, rx in _BOILERPLATE:
        m = rx.search(prose)
        if m:
            return f"{name} {m.group(0).strip()[:60]!r}"
    for rx in _PLACEHOLDERS:
        m = rx.search(prose)
        if m:
            return f"placeholder {m.group(0)[:40]!r}"
    return None


# ---------------------------------------------------------------- junk

_PLACEHOLDER_VALUE = re.compile(r"^\W*(?:null|nil|undefined|nan|none|n/?a|\[object \w+\]|<unk>|<pad>|</?s>|"
                                r"#(?:value|ref|name|n/a|div/0)!?|err(?:or)?|todo|tbd|xxx+|test|asdf\w*)\W*$", re.I)
_RUN = re.compile(r"(\S)\1{5,}")
_BLOB = re.compile(r"(?<![\w/.-])(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])"
                   r"[A-Za-z0-9+/]{24,}={0,2}(?![\w/.-])")
_CONSONANTS = re.compile(r"[bcdfghjklmnpqrstvwxz]{5,}", re.I)
_LETTER = re.compile(r"[^\W\d_]")
_VOWEL = re.compile(r"[aeiouyäöüéèà]", re.I)
#: a text is keyboard mash when at least this share of its words are mashed
_MASH_SHARE = 0.34


def _byte_classes(ascii_member: Callable[[str], object], non_ascii: bool) -> bytes:
    """A ``bytes.translate`` table for UTF-8 text: ``x`` for the ASCII characters
    ``ascii_member`` accepts (and for each byte of a non-ASCII character when ``non_ascii``),
    a space for the others."""
    member = [bool(ascii_member(chr(b))) if b < 128 else non_ascii for b in range(256)]
    return bytes(ord("x") if m else ord(" ") for m in member)


_BASE64_BYTES = _byte_classes(lambda c: re.match(r"[A-Za-z0-9+/]", c), non_ascii=False)
#: vowel-free letters: any non-ASCII character may be one
_NO_VOWEL_BYTES = _byte_classes(lambda c: c.isalpha() and not _VOWEL.match(c), non_ascii=True)
#: an apostrophe between two letters or digits, which joins them into one word ("don't")
_JOIN = re.compile(r"'(?<=[A-Za-z0-9]')(?=[A-Za-z0-9])")
_NON_ALNUM_TO_SPACE = str.maketrans({chr(i): " " for i in range(128) if not chr(i).isalnum()})


def _may_run(prose: str, utf8: bytes) -> bool:
    """False when ``_RUN`` cannot match ``prose``: no six equal characters other than a space
    or a line break follow each other. Worth its fixed cost on longer texts only."""
    if len(prose) < 200:
        return True
    import numpy as np  # imported here: loading the rules stays cheap

    codes = (np.frombuffer(utf8, np.uint8) if prose.isascii()
             else np.frombuffer(prose.encode("utf-32-le", "surrogatepass"), np.uint32))
    same = (codes[1:] == codes[:-1]) & (codes[1:] != ord(" ")) & (codes[1:] != ord("\n"))
    return b"\x01" * 5 in same.tobytes()


def _words(prose: str) -> list[str]:
    """``_WORDS.findall(prose)``, by cheaper means for ASCII text (a joining apostrophe
    becomes a digit, so the word stays one non-alphabetic word; other punctuation separates)."""
    if prose.isascii():
        return _JOIN.sub("0", prose).translate(_NON_ALNUM_TO_SPACE).split()
    return _WORDS.findall(prose)


#: verdicts on words seen before, shared by all rows (answers reuse their words); together
#: they hold at most _SEEN_MAX words, then start over
_MASHED_WORDS: set[str] = set()
_PLAIN_WORDS: set[str] = set()
_SEEN_MAX = 500_000


def _mashed(distinct: set[str]) -> set[str]:
    """The alphabetic words of ``distinct`` that look mashed: five consonants in a row, or
    four or more letters and no vowel."""
    bad = distinct & _MASHED_WORDS
    new = distinct - bad - _PLAIN_WORDS
    if len(_PLAIN_WORDS) + len(_MASHED_WORDS) + len(new) > _SEEN_MAX:
        _PLAIN_WORDS.clear()
        _MASHED_WORDS.clear()
    for w in new:
        if w.isalpha() and (_CONSONANTS.search(w) or (len(w) >= 4 and not _VOWEL.search(w))):
            bad.add(w)
            _MASHED_WORDS.add(w)
        else:
            _PLAIN_WORDS.add(w)
    return bad


def _keyboard_mash(prose: str, utf8: bytes) -> str | None:
    """``keyboard mash 'word'`` when mashed words make up :data:`_MASH_SHARE` of the words."""
    if b"xxxx" not in utf8.translate(_NO_VOWEL_BYTES):
        return None  # a mashed word has four vowel-free letters in a row
    tokens = _words(prose)
    bad = _mashed(set(tokens))
    if not bad:
        return None
    words = list(filter(str.isalpha, tokens))
    mashed = [w for w in words if w in bad]
    if len(mashed) / len(words) >= _MASH_SHARE:
        return f"keyboard mash {mashed[0][:20]!r}"
    return None


def junk(text: str) -> str | None:
    """Why ``text`` is junk rather than an answer (``no letters``, ``placeholder value 'null'``,
    ``character run``, ``encoded blob``, ``keyboard mash``), or None."""
    t = text.strip()
    prose = strip_code(t)
    if len(t) >= 3 and not _LETTER.search(t) and not re.search(r"\d", t):
        return "no letters or digits"
    if _PLACEHOLDER_VALUE.match(t) and not re.match(r"^\W*(?:none|n/?a|test)\W*$", t, re.I):
        return f"placeholder value {t[:30]!r}"
    utf8 = prose.encode("utf-8", "surrogatepass")  # for the byte-table pre-checks
    m = _RUN.search(prose) if _may_run(prose, utf8) else None
    if m and not re.fullmatch(r"[-=_*#~.`+]", m.group(1)):
        return f"character run {m.group(0)[:12]!r}"
    m = _BLOB.search(prose) if b"x" * 24 in utf8.translate(_BASE64_BYTES) else None
    if m:
        return f"encoded blob {m.group(0)[:24]!r}"
    return _keyboard_mash(prose, utf8)


# ---------------------------------------------------------------- refusals and disclaimers

_AI = (r"(?:an? )?(?:ai|a\.i\.|artificial intelligence|(?:large )?language model|llm|chat ?bot|"
       r"(?:ai|virtual|digital) assistant|ai (?:language )?model|machine|computer program|assistant)")
_CANT = (r"(?:can't|cannot|can not|won't be able to|will not be able to|wouldn't be able to|won't|will not|am unable to|'m unable to|am not able to|'m not able to|"
         r"am not allowed to|'m not allowed to|am not permitted to|'m not permitted to|must decline to|"
         r"have to decline to|need to decline|'d rather not|would rather not|prefer not to|am not going to|"
         r"'m not going to|do not feel comfortable|don't feel comfortable|am not comfortable|'m not comfortable|"
         r"am not in a position to|'m not in a position to|don't think i (?:can|should)|"
         r"do not think i (?:can|should))")
_ACT = (r"(?:help|assist|answer|provide|comply|fulfil|fulfill|do (?:that|this|so)|respond|reply|share|discuss|"
        r"give|engage|support|generate|create|write|offer|go into|talk about|complete|continue|comment|"
        r"speculate|disclose|reveal|produce|tell|elaborate|weigh in|address|process|say|express|"
        r"participate|make|access|browse|look up|predict|recommend|advise|with (?:that|this))")

REFUSAL_PATTERNS: tuple[tuple[str, str], ...] = (
    ("as an AI", rf"\bas {_AI}\b"),
    ("I'm an AI and cannot", rf"\bi(?:'m| am) (?:just |only |merely |simply )?{_AI}(?: developed by \w+)?"
                             r"[,;]? (?:and|so|which means|therefore)?,? ?(?:i )?(?:can't|cannot|don't|do not|"
                             r"am not|'m not|have no|lack|won't)"),
    ("I can't help with that", rf"\bi ?{_CANT} {_ACT}"),
    ("I'm afraid / sorry, I can't", rf"\b(?:i'm|i am) (?:afraid|sorry|unable)\b[^.!?\n]{{0,60}}?\b(?:can't|cannot|"
                                    r"can not|won't|unable to|not able to|not (?:comfortable|allowed|permitted|in a "
                                    rf"position)(?: with| to)?|must decline|have to decline|not going to) (?:{_ACT}|that\b|this\b|it\b)"),
    ("sorry, but", rf"\b(?:sorry|apologies|i apologi[sz]e|unfortunately),? (?:but )?(?:(?:i|that|this|it) "
                   rf"(?:can't|cannot|won't|am unable to|'m unable to|am not able to|'m not able to) (?:{_ACT}|that\b|"
                   r"this\b|it\b)|(?:that|this|it)(?:'s| is) (?:not something|beyond|outside|not (?:appropriate|"
                   r"possible)))"),
    ("not something I can", r"\b(?:this|that|it|\w+ing(?: \w+){0,3})(?:'s not| is not| isn't|'s outside| is outside|'s beyond| is beyond|"
                            r" falls outside) (?:(?:something|a (?:question|topic|subject|request|thing)|one|what) "
                            r"(?:that )?(?:i|i'm|i am)(?: (?:can|could|will|would|am able to|able to|feel comfortable|"
                            rf"am comfortable|comfortable|am allowed to|allowed to|am permitted to|permitted to))? (?:{_ACT}|do\b)|"
                            r"my (?:area|place|role|expertise)|the scope)"),
    ("I must decline", r"\bi (?:must|have to|need to|will|'ll|would have to|'d have to) "
                       r"(?:respectfully |politely |kindly )?(?:decline|refrain|pass on)"),
    ("not appropriate", r"\b(?:it|that|this|doing so)(?:'s| is| would be| wouldn't be| would not be) "
                        r"(?:not |in)?appropriate (?:for me )?to\b|\bagainst my (?:guidelines|programming|"
                        r"principles|policy|policies|rules|ethical)"),
    ("my guidelines", r"\bmy (?:guidelines|programming|content policy|policies|instructions|safety guidelines|"
                      r"training data|design) (?:do(?:es)?n't|do(?:es)? not|prevent|prohibit|forbid|restrict|"
                      r"(?:does not |doesn't )?allow)"),
    ("no personal opinions", r"\bi (?:don't|do not) have (?:personal |any )?(?:opinions|beliefs|preferences|"
                             r"access to (?:the internet|real-time|current|personal)|the ability to (?:browse|access)|"
                             r"real-time (?:data|information))"),
    ("knowledge cutoff", r"\b(?:my (?:knowledge|training) (?:cutoff|cut-off|data)|as of my (?:last )?"
                         r"(?:knowledge |training )?(?:update|cutoff|cut-off))"),
    ("can't give advice", r"\b(?:can't|cannot|can not|unable to|not able to|not qualified to) "
                          r"(?:give|provide|offer) (?:you )?(?:medical|legal|financial|professional|personal) advice"),
    ("es: no puedo", r"\b(?:lo siento|lamentablemente|me temo)[^.!?]{0,40}\bno (?:puedo (?:ayudar|responder|"
                     r"proporcionar|hacer eso|asistir|dar|compartir|ofrecer|contestar)|es posible)|"
                     r"\bcomo (?:un |una )?(?:ia|modelo de lenguaje|asistente)\b"),
    ("fr: je ne peux pas", r"\b(?:je suis désolée?|malheureusement|je crains)[^.!?]{0,40}\bne (?:peux|pourrai) pas|"
                           r"\ben tant qu(?:e |')(?:ia|intelligence artificielle|modèle de langage|assistant)"),
    ("de: ich kann nicht", r"\b(?:es tut mir leid|leider|ich fürchte)[^.!?]{0,40}\bkann ich (?:nicht|keine)|"
                           r"\bals (?:eine? )?(?:ki|sprachmodell|ki-sprachmodell|ki-assistent)\b"),
)
_REFUSALS = tuple((name, re.compile(p, re.I)) for name, p in REFUSAL_PATTERNS)
_SCAN_CHARS = 400  # refusals and disclaimers open the answer


def _plain(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


def refusal(text: str) -> str | None:
    """``pattern name: 'matched text'`` when ``text`` refuses or opens with an AI disclaimer,
    else None (only the first 400 characters are looked at)."""
    low = _plain(strip_code(text))[:_SCAN_CHARS].lower()
    for name, rx in _REFUSALS:
        m = rx.search(low)
        if m:
            return f"{name}: {m.group(0)[:60]!r}"
    return None


# ---------------------------------------------------------------- echo

#: conversational filler: words that add nothing to a restated question
FILLER = frozenset("""
question questions ask asks asked asking answer answers answered tell telling told say says
said saying know knows wonder wondering want wants good great nice interesting excellent
fascinating let think thinking thought please thanks thank hi hello hey repeat restate again
query request hmm um uh ah oh well so ok okay sure yes yeah you your i me my
""".split())

#: words that carry no content of their own (function words and conversational filler)
STOPWORDS = FILLER | frozenset("""
a an the and or but nor of to in on at by for from with into onto over under about as than
is are was were be been being am has have had do does did will would shall should can could
may might must i me my mine we us our you your yours he him his she her it its they them
their this that these those there here what which who whom whose when where why how whether
if then so not no yes yeah yep ok okay sure well oh hmm um uh ah just also too very really
quite all any some each every more most such only own same other s t d ll re ve m don like
""".split())


def _stem(w: str) -> str:
    for suf in ("'s", "ies", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


def content_words(text: str) -> list[str]:
    """Lower-cased, crudely stemmed words of ``text`` that are not stopwords or filler."""
    out = []
    for w in _WORDS.findall(text.lower().replace("\u2019", "'")):
        w = w.removesuffix("'s")
        if w not in STOPWORDS:
            out.append(_stem(w))
    return out


def _all_words(text: str) -> list[str]:
    return [_stem(w.removesuffix("'s")) for w in _WORDS.findall(text.lower().replace("\u2019", "'"))]


def novelty(response: str, prompt: str) -> tuple[float, int]:
    """``(share of the response's distinct content words absent from the prompt, number of
    distinct content words)``; ``(1.0, 0)`` when the response has no content word."""
    r = set(content_words(response))
    if not r:
        return 1.0, 0
    p = set(content_words(prompt))
    return len(r - p) / len(r), len(r)


def is_echo(response: str, prompt: str, min_novelty: float) -> tuple[bool, float, int]:
    """``(echo?, novelty, content words)``. An echo is two or more words that (filler such as
    "you asked" or "good question" aside) all come from the question and repeat at least half
    of its content words, or, with three or more content words, has less than ``min_novelty``
    of them new ("Vitamin A" to "Carrots are a good source of which vitamin?" is no echo)."""
    novel, n = novelty(response, prompt)
    everything = _all_words(response)
    if len(everything) >= 2:
        asked = _all_words(prompt)
        rest = set(everything) - FILLER
        asked_content = set(content_words(prompt))
        covered = len(rest & asked_content) / len(asked_content) if asked_content else 1.0
        if everything == asked or (rest - STOPWORDS and rest <= set(asked) and covered >= 0.5):
            return True, 0.0, n
    return n >= 3 and novel < min_novelty, novel, n
