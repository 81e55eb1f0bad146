"""fts_terms.terms is a twin of FTS5's `porter unicode61 remove_diacritics 2`: for each text,
the terms it computes are exactly those SQLite's FTS5 stores (fts5vocab 'instance': every
token of every document, in order), compared as bytes. Covers thousands of English words
built to hit every Porter rule and its boundaries, every string of one to three letters,
punctuation, digits, case, accented Latin, other scripts, emoji, tokens around the 64-byte
stemming limit and every Unicode code point; and shows that a broken rule is caught."""

from __future__ import annotations

import random
import re
import sqlite3
import string
from collections.abc import Callable, Iterator
from itertools import product

import pytest

from ytpiped.store import fts_terms
from ytpiped.store.fts_terms import MAX_STEMMED_BYTES, TOKENIZE, terms
from ytpiped.store.schema import MIGRATIONS


def fts5_terms(texts: list[str]) -> list[list[bytes]]:
    """The terms FTS5 stores for each text, in token order."""
    db = sqlite3.connect(":memory:")
    db.text_factory = bytes
    try:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5 (x, tokenize = '{TOKENIZE}')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab (t, 'instance')")
        db.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts))
        found: list[list[bytes]] = [[] for _ in texts]
        for term, doc in db.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
            found[doc].append(term)
        return found
    finally:
        db.close()


def as_bytes(text: str) -> list[bytes]:
    return [term.encode("utf-8", "surrogateescape") for term in terms(text)]


def mismatches(texts: list[str], expected: list[list[bytes]] | None = None,
               ) -> list[tuple[str, list[bytes], list[bytes]]]:
    """(text, ours, FTS5's) for each text where terms() and FTS5 differ."""
    want = fts5_terms(texts) if expected is None else expected
    return [(text, got, exp) for text, exp in zip(texts, want, strict=True)
            if (got := as_bytes(text)) != exp]


@pytest.fixture(autouse=True)
def fresh_stems() -> Iterator[None]:
    """No stem cached by another test (or by a deliberately broken stemmer) leaks in."""
    fts_terms._stem.cache_clear()
    yield
    fts_terms._stem.cache_clear()


# Classic Porter examples (Porter's paper and the usual test vocabularies) and everyday words.
REAL_WORDS = """
caresses ponies ties caress cats cat feed agreed disabled plastered bled motoring sing
conflated troubled sized hopping tanned falling hissing fizzed failing filing happy sky
relational conditional rational valenci hesitanci digitizer conformabli radicalli
differentli vileli analogousli vietnamization predication operator feudalism decisiveness
hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize
electriciti electrical hopeful goodness revival allowance inference airliner gyroscopic
adjustable defensible irritant replacement adjustment dependent adoption homologou
communism activate angulariti homologous effective bowdlerize probate rate cease controll
roll generalizations oscillators abated abbreviation abilities ability abruptly absence
accordingly achievement actually addition additional adventure agreement alignment
analysis announcements anxiously apologies arguing arrived assistance authorities
beautiful beautifully because becoming beginning believed belonging boxes brushes buses
buzzes caring catalogue centralization certainly challenging characterization cities
combination communication companies comparative completely computational conditioning
connect connected connecting connection connections connective connectivity considerable
controlled controlling crying cries cried dancing daily denied dying eating effectiveness
emotional engineering enormously especially everything expectation experimentation
explanation extremely factual families feeling finally flies flying followed friendship
generalization generously goodness happily happiness harmful hoped hoping hopes hopped
hopper hoppers included independence industrialization informational interesting
irrational knives laziness lying manageable meeting mentioned misunderstanding
modernization moving nationalism nationalities nationality naturally necessary noisy
nationalization operational organization organizational originally ourselves
participation particularly personalities playing pleased possibilities possibility
preferred preferring presumably probably processes professionally proportional
quickly quietly rationalization readily really recognizable referred reflecting
relationship relatively reliable remarkably responsibilities responsibility
revolutionary running sadness sensational sleeping slowly specialization spies
standardization stopped stopping studies studying successfully suddenly supplies
sweetness terrified thinking tried tries truly understanding unfortunately universities
university unnecessary usefulness valuable visualization walking wanted watching whenever
wisdom wonderful worrying written yes yesterday zoology agreeing skis news atlas canvas
this his has was gas bus plus us yes is as its ours theirs whose always perhaps
needed seeded proceed exceed succeed guaranteed freed bleed speed breed indeed
hyped dyed eyed keyed played stayed enjoyed annoyed obeyed buyer player
sys syllabus yearly yellow yoyo yummy youth employee employing employment
filing filling falling failing flying fled fleeing freeing seeing being doing going
"""

# Bases and suffixes combined so that every Porter rule meets stems of measure 0, 1 and 2,
# stems ending in s/t or not, in consonant-vowel-consonant or not, in y, in a doubled letter,
# in e (where -ement and -ment differ: refereement).
BASES = """
b y by yb sy ab ba bab aba tr tre tra str stra abs bat bet bit bot but cat cot cut
hop hope hopp tan tann fall fil fill fail fizz hiss sing sky happ conflat troubl siz
rel relat rat ration condit nat nation gener general format form formal oper predic
communic connect depend adjust replac allow infer airlin gyroscop defens irrit adopt
homolog activ angular effect bowdler prob ceas control rol valen hesit digit conform
radic differ vil analog vietnam feud decis hope callous sensit sensib tripl electr
reviv good us sens rati agr fe plaster bl motor dis caress pon ti ca tie tries
mass buzz box church sect abat abbrev ment ism ion sion tion quest guarantee refere agree
"""
SUFFIXES = """
s es ies sses ss us is ys ed eed ied ing ling ting ying ly y ies er ers est
ational tional enci anci izer logi bli alli entli eli ousli ization ation ator alism iveness
fulness ousness aliti iviti biliti ical ness icate iciti ful ative alize al ance ence ic
able ible ant ement ment ent ion ou ism ate iti ous ive ize at bl iz ate ble ize ll e le
ated ating ation ations izing ized izes ement ements fully ingly edly nesses
"""


def english_words() -> list[str]:
    real = REAL_WORDS.split()
    built = [b + s for b in BASES.split() for s in ("", *SUFFIXES.split())]
    letters = string.ascii_lowercase
    short = ["".join(p) for n in (1, 2, 3) for p in product(letters, repeat=n)]
    rng = random.Random(7)
    # Letters weighted towards the ones Porter looks at.
    pool = "aeiouyaeiouysedngltrbcmpz"
    drawn = ["".join(rng.choice(pool) for _ in range(rng.randint(4, 10))) for _ in range(4000)]
    return sorted(set(real + built + short + drawn))


@pytest.fixture(scope="module")
def english() -> tuple[list[str], list[list[bytes]]]:
    words = english_words()
    return words, fts5_terms(words)


def test_the_schema_indexes_with_the_tokenizer_twinned() -> None:
    used = set(re.findall(r"tokenize\s*=\s*'([^']*)'", "\n".join(MIGRATIONS)))
    assert used == {TOKENIZE}


def test_english_words_stem_as_fts5_stems_them(
        english: tuple[list[str], list[list[bytes]]]) -> None:
    words, expected = english
    assert len(words) > 20_000
    assert mismatches(words, expected)[:20] == []
    # The corpus exercises the stemmer: most words of four letters or more are changed by it.
    changed = sum(1 for w, exp in zip(words, expected, strict=True)
                  if len(w) >= 4 and exp != [w.encode()])
    assert changed > 5_000


def test_the_same_words_in_running_text_and_in_capitals() -> None:
    words = REAL_WORDS.split()
    texts = [" ".join(words), " ".join(words).upper(), " ".join(w.title() for w in words),
             "\n".join(words), ",".join(words)]
    assert mismatches(texts) == []


def test_punctuation_digits_and_ascii_separators() -> None:
    texts = [
        "don't won't it's we'll o'clock rock'n'roll", "e-mail well-being state-of-the-art",
        "U.S.A. e.g. i.e. Ph.D. a.m.", "3.14 1,000,000 -42 +7 1e10 0x1F 2024-05-09 12:30:15",
        "snake_case __init__ CamelCase camelCaseWords kebab-case", "hash#tags #hashtag @user",
        "mp3s 1990s 3rd 4th x86_64 h2o B2B covid19 abc123def 123abc abc123 007 24h7d",
        "a\tb\nc\rd\x00e\x0bf\x0cg", "path/to/file.txt C:\\Windows http://ex.com/a?b=c&d=e#f",
        "(parenthesised) [bracketed] {braced} <angled> \"quoted\" 'single' `back`",
        "ellipsis... dash -- semicolon; colon: bang! query? tilde~ caret^ pipe| star*",
        "", " ", "...", "a", "I", "ab", "ABC", "ok.", "x-ray", "T-shirts", "CDs", "ID's",
    ]
    # Every ASCII character, alone and inside and after a word.
    texts += [f"ab{chr(c)}cd {chr(c)} word{chr(c)}s hop{chr(c)}ping" for c in range(128)]
    assert mismatches(texts) == []


LATIN = """
café cafés naïve naïvety Ångström façade façades Straße Straßen crème brûlée jalapeño
São Paulo Zürich Łódź Dvořák Ærøskøbing œuvre Øresund Þórr résumé résumés señor über
garçon coöperate déjà vu piñata Ægir ÉCOLE ÉLÉPHANTS fiancée fiancées Müller Größe
Ǖǖ Ǆ ǅ ǆ Ĳ ĳ ſ ﬁne ﬂows ẞ Ḁḁ ẛ Åland Kelvin
"""


def test_accented_latin_including_every_latin1_character() -> None:
    texts = [LATIN, LATIN.upper(), LATIN.lower()]
    # Decomposed accents (NFD): they continue a token and fold away, or separate.
    texts += ["e\u0301cole cafe\u0301s nai\u0308ve \u0301start mid\u0301dle end\u0301",
              "a\u0308\u0301b o\u0336strike x\u20dd ring\u030a\u030a", "A\u030angstro\u0308m"]
    # Every Latin-1 character alone, inside a word, before a Porter suffix and doubled.
    texts += [f"{chr(c)} ab{chr(c)}cd x{chr(c)}ing {chr(c)}{chr(c)}ed caf{chr(c)}s "
              f"{chr(c)}ational {chr(c).upper()}ness" for c in range(0x80, 0x100)]
    assert mismatches(texts) == []


def test_other_scripts_and_emoji() -> None:
    texts = [
        "Καλημέρα κόσμε ΚΑΛΗΜΈΡΑ ΣΊΣΥΦΟΣ σίσυφος ΐ ϐ ϑ ϕ ϖ ϰ ϱ ϵ µ",
        "Привет мир ПРИВЕТ Ёлка ёлка Йод й Її Ґґ Ӓӓ Ԥ Ꙁ В",
        "中文字符 日本語のテキスト カタカナ ﾊﾝｶｸ 한국어 텍스트 中文abc abc中文 丸ed a丸ed a丸s",
        "مرحبا بالعالم ٣٤٥ שלום עולם नमस्ते दुनिया สวัสดีครับ ሰላም ᏣᎳᎩ ꭰꭱ Ⴀⴀ Ա ա",
        "😀 🙂 🤔 🤣 🥰 🫠 hello😀world hello🙂world wait🤔what 👍🏽 👨‍👩‍👧 🇫🇷 ❤️ ✨ ☕",
        "₿ ₽ ₺ € £ ¥ ©️ ™ ℃ ① ⅷ ² ½ Ⅻ ⅻ ａｂｃ ＡＢＣ １２３ 𝐀𝐁𝐂 𝟙𝟚 𐐀𐐨 𐒰 𞤀",
        "\u200bzero\u200dwidth\ufeffbom\u00adsoft\u2028line\u2029para\u202eright",
        "\U000e0041tag \U000f0000private \ue000use \ufffenon \U0010ffff \ufffd",
    ]
    assert mismatches(texts) == []


def test_tokens_at_the_porter_length_limits() -> None:
    texts = []
    for n in range(58, 70):
        texts += ["x" * (n - 3) + "ing", "b" * (n - 1) + "s", "generalizations"[:n]]
        # Two bytes a character: the limit counts bytes, not characters.
        texts += ["ß" * ((n - 3) // 2) + "ing", "ß" * ((n - 1) // 2) + "s" + "t" * (n % 2)]
    texts += ["a" * 300, "internationalization" * 10, "ing" * 40, "é" * 40 + "s"]
    assert {len(t.encode()) for t in texts} >= set(range(60, 70))
    assert mismatches(texts) == []
    # The limit itself: 64 bytes are stemmed, 65 pass through.
    assert terms("a" * 61 + "ing") == ["a" * 61]
    assert terms("a" * 62 + "ing") == ["a" * 62 + "ing"]
    assert MAX_STEMMED_BYTES == 64


def test_a_multibyte_character_cut_by_porter_keeps_fts5s_bytes() -> None:
    # 丸 is E4 B8 B8: undoubling the "double consonant" after -ed cuts its last byte.
    texts = ["a丸ed", "ab丸ing", "y丸ed", "a\u2082ed"]
    assert mismatches(texts) == []
    assert as_bytes("a丸ed") == [b"a\xe4\xb8"]


def sweep(codes: list[int]) -> list[str]:
    """Texts putting each code point where unicode61 shows how it treats it: starting a
    token, inside one, glued to a Porter suffix and doubled before -ing."""
    texts = []
    for i in range(0, len(codes), 2048):
        texts.append(" ".join(f"{chr(c)}q{chr(c)}q a{chr(c)}ed {chr(c)}{chr(c)}ing"
                              for c in codes[i:i + 2048]))
    return texts


def test_every_code_point_of_the_common_planes() -> None:
    codes = [*range(0x3000), *range(0x1F000, 0x1FB00)]
    assert mismatches(sweep(codes)) == []


@pytest.mark.slow
def test_every_code_point() -> None:
    codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [" ".join(f"{chr(c)}q{chr(c)}q" for c in codes[i:i + 4096])
             for i in range(0, len(codes), 4096)]
    assert [m[0][:20] for m in mismatches(texts)] == []


def test_surrogates_separate() -> None:
    assert terms("ab\ud800cd \udfffef") == ["ab", "cd", "ef"]


def _without(rules: dict[str, tuple[tuple[str, str], ...]], suffix: str,
             ) -> dict[str, tuple[tuple[str, str], ...]]:
    return {k: tuple(r for r in v if r[0] != suffix) for k, v in rules.items()}


BREAKAGES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "step 1a keeps plurals": lambda mp: mp.setattr(fts_terms, "_step1a", lambda w: w),
    "step 2 without -ational": lambda mp: mp.setattr(
        fts_terms, "_STEP2", _without(fts_terms._STEP2, "ational")),
    "step 3 without -ness": lambda mp: mp.setattr(
        fts_terms, "_STEP3", _without(fts_terms._STEP3, "ness")),
    "step 4 without -ent": lambda mp: mp.setattr(
        fts_terms, "_STEP4", _without(fts_terms._STEP4, "ent")),
    "step 4 without -ement": lambda mp: mp.setattr(
        fts_terms, "_STEP4", _without(fts_terms._STEP4, "ement")),
    "y never a vowel": lambda mp: mp.setattr(
        fts_terms, "_has_vowel", lambda s: any(c in "aeiou" for c in s)),
    "no *o condition": lambda mp: mp.setattr(fts_terms, "_cvc", lambda s: False),
    "m off by one": lambda mp: mp.setattr(
        fts_terms, "_measure", lambda s: fts_terms._cv(s).count("vc") + 1),
    "a 65-byte limit": lambda mp: mp.setattr(fts_terms, "MAX_STEMMED_BYTES", 65),
    "two-letter words stemmed": lambda mp: mp.setattr(
        fts_terms, "_stem", lambda w: fts_terms._porter(w) if 2 <= len(w) <= 64 else w),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_stemmer_is_caught(breakage: str, monkeypatch: pytest.MonkeyPatch,
                                    english: tuple[list[str], list[list[bytes]]]) -> None:
    words, expected = english
    long_words = ["a" * 62 + "ing", "a" * 62 + "ies"]
    BREAKAGES[breakage](monkeypatch)
    assert mismatches(words + long_words, expected + fts5_terms(long_words))


def test_a_broken_fold_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = LATIN.split()
    assert mismatches(texts) == []
    monkeypatch.setattr(fts_terms, "_FOLD", {k: v for k, v in fts_terms._FOLD.items()
                                            if k != ord("é")})
    assert [m[0] for m in mismatches(texts)] == [w for w in texts if "é" in w]
