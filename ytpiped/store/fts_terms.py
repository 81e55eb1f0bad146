"""The terms SQLite's FTS5 indexes for a text, computed in Python.

ytpiped's search indexes use FTS5 with ``tokenize = 'porter unicode61 remove_diacritics 2'``
(store/schema.py). `terms` is a twin of that tokenizer: the same terms, in the same order, as
FTS5 stores in its index (what ``fts5vocab(..., 'instance')`` lists), so that Python can build
further tokens from them (word pairs for phrase search) that agree with FTS5's own.

How FTS5 gets them (ext/fts5/fts5_tokenize.c):

- unicode61 splits the text into runs of token characters: ASCII letters and digits, and
  the non-ASCII characters whose Unicode category is L*, N* or Co in the Unicode data
  SQLite's tables were built from (6.1): a character unassigned in 6.1 is a token character
  too, so 🙂 (Unicode 7) and 🤔 (8) glue to the letters around them where 😀 (6.0) separates.
  Twenty-five combining accents (`_MARKS`) do not start a token but continue one.
- Each character of a token is folded: ASCII A-Z to a-z; other letters by the simple case
  folding of Unicode 6.1 (`_CASE`: µ to μ, ς to σ, but none of the pairs Unicode added
  later, such as Cherokee's, that Python's str.lower knows); and, remove_diacritics 2,
  Latin letters with diacritics to their bare ASCII letter (`_LATIN`: é to e, ǖ to u, but
  ß, æ, ø, ł, đ stay; Greek and Cyrillic accents stay: ά and й are not folded); the
  accents of `_MARKS` inside a token vanish.
- porter stems each token of 3 to 64 bytes of UTF-8 (shorter or longer ones pass through)
  with its own Porter stemmer, which works on those bytes: only ASCII a, e, i, o, u (and y)
  are vowels, every byte of a non-ASCII character is a consonant.

The tables below were read off SQLite 3.40.1's FTS5 by tokenizing every code point (they
are the Unicode 6.1 data SQLite's fts5_unicode2.c was generated from);
tests/unit/test_fts_terms.py checks every code point, and tens of thousands of words,
against the installed SQLite. Nothing is approximated with Python's unicodedata (its newer
Unicode would differ: 🙂, ₺ and the Cherokee case pairs above). Where Python and FTS5 can
still disagree:

- A SQLite whose unicode61 tables were regenerated from newer Unicode data would need the
  tables redone (the exhaustive test, marked slow, says where).
- A lone surrogate (a str that could not be stored in SQLite anyway) counts as a separator,
  as SQLite reads one as U+FFFD.
- The Porter step that undoubles a final double consonant after removing -ed or -ing
  compares bytes, so it can cut the last byte off a non-ASCII character whose UTF-8 ends in
  two equal bytes ("a丸ed": 丸 is E4 B8 B8; FTS5 stores the invalid bytes 61 E4 B8). Such a
  term carries the stray bytes as surrogate escapes: ``term.encode("utf-8",
  "surrogateescape")`` is exactly what FTS5 stores, but the str cannot be written to
  SQLite as text as it is. Only a letter glued to ASCII -ed or -ing does this.

Speed: ASCII text is lowered and split by one regular expression; the stem of each word is
cached (the vocabulary of speech is small), so a word costs well under a microsecond once
its stem is known.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["MAX_STEMMED_BYTES", "TOKENIZE", "terms"]

#: The tokenizer this module twins (store/schema.py creates its FTS5 tables with it).
TOKENIZE = "porter unicode61 remove_diacritics 2"

#: porter leaves longer tokens (in bytes of UTF-8) as they are (FTS5_PORTER_MAX_TOKEN).
MAX_STEMMED_BYTES = 64


def terms(text: str) -> list[str]:
    """The terms FTS5's `TOKENIZE` indexes for `text`, in order."""
    if text.isascii():
        words = _ASCII_WORD.findall(text.lower())
    else:
        words = _WORD.findall(text.translate(_FOLD))
    return list(map(_stem, words))


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """porter's term for one folded unicode61 token."""
    if word.isascii():
        if not 3 <= len(word) <= MAX_STEMMED_BYTES:
            return word
        return _porter(word)
    raw = word.encode()
    if not 3 <= len(raw) <= MAX_STEMMED_BYTES:
        return word
    # Stem the UTF-8 bytes, one latin-1 character a byte, as FTS5 does.
    return _porter(raw.decode("latin-1")).encode("latin-1").decode("utf-8", "surrogateescape")


# --- Porter (fts5PorterCb and its steps) -------------------------------------------------

_VOWELS = frozenset("aeiou")


def _cv(s: str) -> str:
    """'c' or 'v' for each character: a, e, i, o, u are vowels, y one after a consonant."""
    out = []
    cons = False
    for ch in s:
        cons = not (ch in _VOWELS or (ch == "y" and cons))
        out.append("c" if cons else "v")
    return "".join(out)


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in the stem."""
    return _cv(stem).count("vc")


def _cvc(stem: str) -> bool:
    """Porter's *o: the stem ends consonant-vowel-consonant, the last not w, x or y."""
    return stem[-1:] not in ("w", "x", "y") and _cv(stem).endswith("cvc")


def _has_vowel(stem: str) -> bool:
    """Porter's *v* as FTS5 tests it: a vowel, or a y anywhere but first."""
    return any(ch in _VOWELS for ch in stem) or "y" in stem[1:]


# Steps 2, 3 and 4: (suffix, replacement) rules grouped, as in FTS5's switch, by the
# second-to-last character of the word; the first suffix of the group the word ends with
# (the word longer than it) decides, whether or not its condition holds.
_Rules = dict[str, tuple[tuple[str, str], ...]]
_STEP2: _Rules = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "g": (("logi", "log"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
}
_STEP3: _Rules = {
    "a": (("ical", "ic"),),
    "s": (("ness", ""),),
    "t": (("icate", "ic"), ("iciti", "ic")),
    "u": (("ful", ""),),
    "v": (("ative", ""),),
    "z": (("alize", "al"),),
}
_STEP4: _Rules = {
    "a": (("al", ""),),
    "c": (("ance", ""), ("ence", "")),
    "e": (("er", ""),),
    "i": (("ic", ""),),
    "l": (("able", ""), ("ible", "")),
    "n": (("ant", ""), ("ement", ""), ("ment", ""), ("ent", "")),
    "o": (("ion", ""), ("ou", "")),
    "s": (("ism", ""),),
    "t": (("ate", ""), ("iti", "")),
    "u": (("ous", ""),),
    "v": (("ive", ""),),
    "z": (("ize", ""),),
}


def _replace(word: str, rules: _Rules, min_measure: int) -> str:
    group = rules.get(word[-2]) if len(word) >= 2 else None
    for suffix, replacement in group or ():
        if len(word) > len(suffix) and word.endswith(suffix):
            stem = word[: -len(suffix)]
            if _measure(stem) < min_measure or (suffix == "ion" and stem[-1] not in "st"):
                return word
            return stem + replacement
    return word


def _step1a(w: str) -> str:
    if w[-1] != "s":
        return w
    if w[-2] == "e":
        if (len(w) > 4 and w[-4:-2] == "ss") or (len(w) > 3 and w[-3] == "i"):
            return w[:-2]
        return w[:-1]
    return w if w[-2] == "s" else w[:-1]


def _step1b(w: str) -> str:
    if len(w) > 3 and w.endswith("eed"):
        return w[:-1] if _measure(w[:-3]) > 0 else w
    if len(w) > 2 and w.endswith("ed") and _has_vowel(w[:-2]):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("ing") and _has_vowel(w[:-3]):
        w = w[:-3]
    else:
        return w
    # The -ed or -ing went.
    if len(w) > 2 and w[-2:] in ("at", "bl", "iz"):
        return w + "e"
    last = w[-1]
    if last not in "aeioulsz" and len(w) >= 2 and last == w[-2]:
        return w[:-1]
    if _measure(w) == 1 and _cvc(w):
        return w + "e"
    return w


def _porter(word: str) -> str:
    """fts5PorterCb on a token of 3 to 64 bytes (one character a byte)."""
    w = _step1b(_step1a(word))
    if w[-1] == "y" and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    w = _replace(w, _STEP2, 1)
    w = _replace(w, _STEP3, 1)
    w = _replace(w, _STEP4, 2)
    if w[-1] == "e":
        m = _measure(w[:-1])
        if m > 1 or (m == 1 and not _cvc(w[:-1])):
            w = w[:-1]
    if len(w) > 1 and w.endswith("ll") and _measure(w[:-1]) > 1:
        w = w[:-1]
    return w


# --- unicode61 with remove_diacritics 2 --------------------------------------------------

#: Non-ASCII code points that separate tokens (hex, ranges inclusive); every other
#: non-ASCII code point is a token character.
_SEPARATORS = """
80-a9 ab-b1 b4 b6-b8 bb bf d7 f7 2c2-2c5 2d2-2df 2e5-2eb 2ed 2ef-36f 375 37e 384-385 387 3f6
482-489 55a-55f 589-58a 58f 591-5c7 5f3-5f4 600-604 606-61b 61e-61f 64b-65f 66a-66d 670 6d4
6d6-6e4 6e7-6ed 6fd-6fe 700-70d 70f 711 730-74a 7a6-7b0 7eb-7f3 7f6-7f9 816-819 81b-823
825-827 829-82d 830-83e 859-85b 85e 8e4-8fe 900-903 93a-93c 93e-94f 951-957 962-965 970
981-983 9bc 9be-9c4 9c7-9c8 9cb-9cd 9d7 9e2-9e3 9f2-9f3 9fa-9fb a01-a03 a3c a3e-a42 a47-a48
a4b-a4d a51 a70-a71 a75 a81-a83 abc abe-ac5 ac7-ac9 acb-acd ae2-ae3 af0-af1 b01-b03 b3c
b3e-b44 b47-b48 b4b-b4d b56-b57 b62-b63 b70 b82 bbe-bc2 bc6-bc8 bca-bcd bd7 bf3-bfa c01-c03
c3e-c44 c46-c48 c4a-c4d c55-c56 c62-c63 c7f c82-c83 cbc cbe-cc4 cc6-cc8 cca-ccd cd5-cd6
ce2-ce3 d02-d03 d3e-d44 d46-d48 d4a-d4d d57 d62-d63 d79 d82-d83 dca dcf-dd4 dd6 dd8-ddf
df2-df4 e31 e34-e3a e3f e47-e4f e5a-e5b eb1 eb4-eb9 ebb-ebc ec8-ecd f01-f1f f34-f3f f71-f87
f8d-f97 f99-fbc fbe-fcc fce-fda 102b-103e 104a-104f 1056-1059 105e-1060 1062-1064 1067-106d
1071-1074 1082-108d 108f 109a-109f 10fb 135d-1368 1390-1399 1400 166d-166e 1680 169b-169c
16eb-16ed 1712-1714 1732-1736 1752-1753 1772-1773 17b4-17d6 17d8-17db 17dd 1800-180e 18a9
1920-192b 1930-193b 1940 1944-1945 19b0-19c0 19c8-19c9 19de-19ff 1a17-1a1b 1a1e-1a1f
1a55-1a5e 1a60-1a7c 1a7f 1aa0-1aa6 1aa8-1aad 1b00-1b04 1b34-1b44 1b5a-1b7c 1b80-1b82
1ba1-1bad 1be6-1bf3 1bfc-1bff 1c24-1c37 1c3b-1c3f 1c7e-1c7f 1cc0-1cc7 1cd0-1ce8 1ced
1cf2-1cf4 1dc0-1de6 1dfc-1dff 1fbd 1fbf-1fc1 1fcd-1fcf 1fdd-1fdf 1fed-1fef 1ffd-1ffe
2000-2064 206a-206f 207a-207e 208a-208e 20a0-20b9 20d0-20f0 2100-2101 2103-2106 2108-2109
2114 2116-2118 211e-2123 2125 2127 2129 212e 213a-213b 2140-2144 214a-214d 214f 2190-23f3
2400-2426 2440-244a 249c-24e9 2500-26ff 2701-2775 2794-2b4c 2b50-2b59 2ce5-2cea 2cef-2cf1
2cf9-2cfc 2cfe-2cff 2d70 2d7f 2de0-2e2e 2e30-2e3b 2e80-2e99 2e9b-2ef3 2f00-2fd5 2ff0-2ffb
3000-3004 3008-3020 302a-3030 3036-3037 303d-303f 3099-309c 30a0 30fb 3190-3191 3196-319f
31c0-31e3 3200-321e 322a-3247 3250 3260-327f 328a-32b0 32c0-32fe 3300-33ff 4dc0-4dff
a490-a4c6 a4fe-a4ff a60d-a60f a66f-a67e a69f a6f0-a6f7 a700-a716 a720-a721 a789-a78a a802
a806 a80b a823-a82b a836-a839 a874-a877 a880-a881 a8b4-a8c4 a8ce-a8cf a8e0-a8f1 a8f8-a8fa
a926-a92f a947-a953 a95f a980-a983 a9b3-a9cd a9de-a9df aa29-aa36 aa43 aa4c-aa4d aa5c-aa5f
aa77-aa79 aa7b aab0 aab2-aab4 aab7-aab8 aabe-aabf aac1 aade-aadf aaeb-aaf1 aaf5-aaf6
abe3-abed d800-dfff fb1e fb29 fbb2-fbc1 fd3e-fd3f fdfc-fdfd fe00-fe19 fe20-fe26 fe30-fe52
fe54-fe66 fe68-fe6b feff ff01-ff0f ff1a-ff20 ff3b-ff40 ff5b-ff65 ffe0-ffe6 ffe8-ffee
fff9-ffff 10100-10102 10137-1013f 10179-10189 10190-1019b 101d0-101fd 1039f 103d0 10857
1091f 1093f 10a01-10a03 10a05-10a06 10a0c-10a0f 10a38-10a3a 10a3f 10a50-10a58 10a7f
10b39-10b3f 11000-11002 11038-1104d 11080-11082 110b0-110c1 11100-11102 11127-11134
11140-11143 11180-11182 111b3-111c0 111c5-111c8 116ab-116b7 12470-12473 16f51-16f7e
16f8f-16f92 1d000-1d0f5 1d100-1d126 1d129-1d1dd 1d200-1d245 1d300-1d356 1d6c1 1d6db 1d6fb
1d715 1d735 1d74f 1d76f 1d789 1d7a9 1d7c3 1eef0-1eef1 1f000-1f02b 1f030-1f093 1f0a0-1f0ae
1f0b1-1f0be 1f0c1-1f0cf 1f0d1-1f0df 1f110-1f12e 1f130-1f16b 1f170-1f19a 1f1e6-1f202
1f210-1f23a 1f240-1f248 1f250-1f251 1f300-1f320 1f330-1f335 1f337-1f37c 1f380-1f393
1f3a0-1f3c4 1f3c6-1f3ca 1f3e0-1f3f0 1f400-1f43e 1f440 1f442-1f4f7 1f4f9-1f4fc 1f500-1f53d
1f540-1f543 1f550-1f567 1f5fb-1f640 1f645-1f64f 1f680-1f6c5 1f700-1f773 e0001 e0020-e007f
e0100-e01ef
"""

#: Combining accents that continue a token (and are dropped from it).
_MARKS = "300-304 306-30c 30f 311 31b 323-328 32d-32e 330-331"

#: Case folding: code point > folded code point, or a range (each second code point with
#: /2) folded onto the run starting at the target.
_CASE = """
b5>3bc c6>e6 d0>f0 d8>f8 de>fe 110>111 126>127 132>133 13f-141/2>140 14a>14b 152>153 166>167
181>253 182-184/2>183 186>254 187>188 189-18a>256 18b>18c 18e>1dd 18f>259 190>25b 191>192
193>260 194>263 196>269 197>268 198>199 19c>26f 19d>272 19f>275 1a2-1a4/2>1a3 1a6>280
1a7>1a8 1a9>283 1ac>1ad 1ae>288 1b1-1b2>28a 1b3-1b5/2>1b4 1b7>292 1b8>1b9 1bc>1bd 1c4>1c6
1c5>1c6 1c7>1c9 1c8>1c9 1ca>1cc 1cb>1cc 1e0-1e4/2>1e1 1ee>1ef 1f1>1f3 1f2>1f3 1f6>195
1f7>1bf 1fc-1fe/2>1fd 21c>21d 220>19e 222-224/2>223 23a>2c65 23b>23c 23d>19a 23e>2c66
241>242 243>180 244>289 245>28c 246-24e/2>247 370-372/2>371 376>377 386>3ac 388-38a>3ad
38c>3cc 38e-38f>3cd 391-3a1>3b1 3a3-3ab>3c3 3c2>3c3 3cf>3d7 3d0>3b2 3d1>3b8 3d5>3c6 3d6>3c0
3d8-3ee/2>3d9 3f0>3ba 3f1>3c1 3f4>3b8 3f5>3b5 3f7>3f8 3f9>3f2 3fa>3fb 3fd-3ff>37b
400-40f>450 410-42f>430 460-480/2>461 48a-4be/2>48b 4c0>4cf 4c1-4cd/2>4c2 4d0-526/2>4d1
531-556>561 10a0-10c5>2d00 10c7>2d27 10cd>2d2d 1e9e>df 1efa-1efe/2>1efb 1f08-1f0f>1f00
1f18-1f1d>1f10 1f28-1f2f>1f20 1f38-1f3f>1f30 1f48-1f4d>1f40 1f59-1f5f/2>1f51 1f68-1f6f>1f60
1f88-1f8f>1f80 1f98-1f9f>1f90 1fa8-1faf>1fa0 1fb8-1fb9>1fb0 1fba-1fbb>1f70 1fbc>1fb3
1fbe>3b9 1fc8-1fcb>1f72 1fcc>1fc3 1fd8-1fd9>1fd0 1fda-1fdb>1f76 1fe8-1fe9>1fe0
1fea-1feb>1f7a 1fec>1fe5 1ff8-1ff9>1f78 1ffa-1ffb>1f7c 1ffc>1ff3 2126>3c9 2132>214e
2160-216f>2170 2183>2184 2c00-2c2e>2c30 2c60>2c61 2c62>26b 2c63>1d7d 2c64>27d
2c67-2c6b/2>2c68 2c6d>251 2c6e>271 2c6f>250 2c70>252 2c72>2c73 2c75>2c76 2c7e-2c7f>23f
2c80-2ce2/2>2c81 2ceb-2ced/2>2cec 2cf2>2cf3 a640-a66c/2>a641 a680-a696/2>a681
a722-a72e/2>a723 a732-a76e/2>a733 a779-a77b/2>a77a a77d>1d79 a77e-a786/2>a77f a78b>a78c
a78d>265 a790-a792/2>a791 a7a0-a7a8/2>a7a1 a7aa>266 ff21-ff3a>ff41 10400-10427>10428
"""

#: remove_diacritics 2: the letters folded to each bare ASCII letter.
_LATIN = {
    "a": "ÀÁÂÃÄÅàáâãäåĀāĂăĄąǍǎǞǟǺǻȀȁȂȃȦȧḀḁẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặ\u212b",  # the last: ANGSTROM
    "b": "ḂḃḄḅḆḇ",
    "c": "ÇçĆćĈĉĊċČčḈḉ",
    "d": "ĎďḊḋḌḍḎḏḐḑḒḓ",
    "e": "ÈÉÊËèéêëĒēĔĕĖėĘęĚěȄȅȆȇȨȩḔḕḖḗḘḙḚḛḜḝẸẹẺẻẼẽẾếỀềỂểỄễỆệ",
    "f": "Ḟḟ",
    "g": "ĜĝĞğĠġĢģǦǧǴǵḠḡ",
    "h": "ĤĥȞȟḢḣḤḥḦḧḨḩḪḫẖ",
    "i": "ÌÍÎÏìíîïĨĩĪīĬĭĮįİǏǐȈȉȊȋḬḭḮḯỈỉỊị",
    "j": "Ĵĵǰ",
    "k": "ĶķǨǩḰḱḲḳḴḵ\u212a",  # the last: KELVIN
    "l": "ĹĺĻļĽľḶḷḸḹḺḻḼḽ",
    "m": "ḾḿṀṁṂṃ",
    "n": "ÑñŃńŅņŇňǸǹṄṅṆṇṈṉṊṋ",
    "o": "ÒÓÔÕÖòóôõöŌōŎŏŐőƠơǑǒǪǫǬǭȌȍȎȏȪȫȬȭȮȯȰȱṌṍṎṏṐṑṒṓỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợ",
    "p": "ṔṕṖṗ",
    "r": "ŔŕŖŗŘřȐȑȒȓṘṙṚṛṜṝṞṟ",
    "s": "ŚśŜŝŞşŠšſȘșṠṡṢṣṤṥṦṧṨṩẛ",
    "t": "ŢţŤťȚțṪṫṬṭṮṯṰṱẗ",
    "u": "ÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲųƯưǓǔǕǖǗǘǙǚǛǜȔȕȖȗṲṳṴṵṶṷṸṹṺṻỤụỦủỨứỪừỬửỮữỰự",
    "v": "ṼṽṾṿ",
    "w": "ŴŵẀẁẂẃẄẅẆẇẈẉẘ",
    "x": "ẊẋẌẍ",
    "y": "ÝýÿŶŷŸȲȳẎẏẙỲỳỴỵỶỷỸỹ",
    "z": "ŹźŻżŽžẐẑẒẓẔẕ",
}


def _hex_ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for item in spec.split():
        first, _, last = item.partition("-")
        out.append((int(first, 16), int(last or first, 16)))
    return out


def _fold_table() -> dict[int, int | None]:
    table: dict[int, int | None] = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
    for item in _CASE.split():
        source, target = item.split(">")
        span, _, step = source.partition("/")
        first, last = _hex_ranges(span)[0]
        stride = int(step or 1)
        for i, code in enumerate(range(first, last + 1, stride)):
            table[code] = int(target, 16) + i * stride
    for letter, accented in _LATIN.items():
        table.update((ord(ch), ord(letter)) for ch in accented)
    for first, last in _hex_ranges(_MARKS):
        table.update((code, None) for code in range(first, last + 1))
    return table


def _word_pattern() -> re.Pattern[str]:
    separators = [(0, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7F), (0xD800, 0xDFFF)]
    separators += _hex_ranges(_SEPARATORS)
    cls = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in separators)
    return re.compile(f"[^{cls}]+")


_FOLD = _fold_table()
_WORD = _word_pattern()
_ASCII_WORD = re.compile("[a-z0-9]+")
