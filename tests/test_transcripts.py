"""Transcript readers: every format, and the bad inputs each one must name."""
import json

import pytest

from hilbert_cli.errors import HilbertError
from hilbert_cli.corpus.transcripts import read_transcript

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Hello</i> there,
how are you?

2
00:00:04,250 --> 00:01:02,000
I am fine.
"""

VTT = """WEBVTT

NOTE a comment block that is not a cue

intro
00:01.000 --> 00:03.500 align:start position:10%
<v Interviewer>Hello there,</v>
how are you?

01:00:04.250 --> 01:00:05.000
I am <c.loud>fine</c>.
"""

TEXTGRID_LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 5.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "TextTier"
        name = "events"
        xmin = 0
        xmax = 5.5
        points: size = 1
        points [1]:
            number = 0.5
            mark = "click"
    item [2]:
        class = "IntervalTier"
        name = "utterances"
        xmin = 0
        xmax = 5.5
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 1.25
            text = "She said ""yes"" [1] twice"
        intervals [2]:
            xmin = 1.25
            xmax = 2
            text = ""
        intervals [3]:
            xmin = 2
            xmax = 5.5
            text = "and then left"
'''

TEXTGRID_SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
5.5
<exists>
1
"IntervalTier"
"utterances"
0
5.5
3
0
1.25
"She said ""yes"" [1] twice"
1.25
2
""
2
5.5
"and then left"
'''


def _spans(t):
    return [(c.start, c.end, c.text) for c in t.cues]


def test_plain_text_is_untimed_and_whitespace_normalised(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Hello   there.\n\nSecond line\n", encoding="utf-8")
    t = read_transcript(p)
    assert not t.timed and t.text == "Hello there. Second line"
    assert t.words == ["Hello", "there.", "Second", "line"]


def test_srt(tmp_path):
    p = tmp_path / "a.srt"
    p.write_text(SRT, encoding="utf-8")
    t = read_transcript(p)
    assert t.timed and t.format == "srt"
    assert _spans(t) == [(1.0, 3.5, "Hello there, how are you?"), (4.25, 62.0, "I am fine.")]


def test_vtt_skips_notes_ids_settings_and_tags(tmp_path):
    p = tmp_path / "a.vtt"
    p.write_text(VTT, encoding="utf-8")
    assert _spans(read_transcript(p)) == [(1.0, 3.5, "Hello there, how are you?"), (3604.25, 3605.0, "I am fine.")]


@pytest.mark.parametrize("text", [TEXTGRID_LONG, TEXTGRID_SHORT], ids=["long", "short"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_textgrid_formats_and_encodings(tmp_path, text, encoding):
    p = tmp_path / "a.TextGrid"
    p.write_bytes(text.encode(encoding))  # Python's utf-16 codec writes a BOM, as Praat does
    t = read_transcript(p)
    # the point tier is skipped, the empty interval (a pause) dropped, "" unescaped
    assert _spans(t) == [(0.0, 1.25, 'She said "yes" [1] twice'), (2.0, 5.5, "and then left")]


def test_json_list_and_whisper_style_object(tmp_path):
    cues = [{"start": 2, "end": 3.5, "text": " second "}, {"start": 0.5, "end": 1.5, "text": "first"}]
    p = tmp_path / "a.json"
    p.write_text(json.dumps(cues))
    assert _spans(read_transcript(p)) == [(0.5, 1.5, "first"), (2.0, 3.5, "second")]  # sorted by start
    p.write_text(json.dumps({"text": "ignored", "segments": cues}))
    assert len(read_transcript(p).cues) == 2


@pytest.mark.parametrize("name,data,match", [
    ("a.txt", b"caf\xe9 au lait", "cannot decode"),
    ("a.srt", "caf\u00e9".encode("utf-16-le"), "cannot decode|no 'start --> end'"),
    ("a.txt", b"  \n ", "empty"),
    ("a.srt", b"1\nnot a timing line\nhello\n", "no 'start --> end'"),
    ("a.vtt", b"00:01.000 --> 00:02.000\nhi\n", "WEBVTT"),
    ("a.json", b'[{"start": 1, "end": 2}]', "item 0"),
    ("a.json", b'{"start": 1', "invalid JSON"),
    ("a.json", b'[{"start": 3, "end": 2, "text": "backwards"}]', "invalid time span"),
    ("a.json", b'[{"start": 1, "end": 2, "text": "  "}]', "no cue with text"),
    ("a.TextGrid", b'File type = "ooTextFile"\nObject class = "TextGrid"\n0\n5\n<exists>\n1\n"IntervalTier"\n"x"\n0\n5\n3\n0\n1\n', "truncated"),
    ("a.TextGrid", b"hello", "not a Praat"),
    ("a.doc", b"hello", "unknown transcript format"),
])
def test_bad_transcripts_name_the_file(tmp_path, name, data, match):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(HilbertError, match=match) as e:
        read_transcript(p)
    assert str(p) in str(e.value)


# --- real interviews: several tiers, speakers, leftovers in the text ---------------------------
def textgrid(tiers, xmax, short=False):
    """A Praat text TextGrid, long or short format, written here independently of the reader.
    `tiers`: (name, intervals [(start, end, label)]) or (name, points [(time, label)]) with "points"."""
    q = lambda s: '"' + s.replace('"', '""') + '"'
    if short:
        out = ['File type = "ooTextFile short"', 'Object class = "TextGrid"', "", "0", str(xmax), "<exists>", str(len(tiers))]
        for name, items in tiers:
            points = len(items[0]) == 2
            out += [q("TextTier" if points else "IntervalTier"), q(name), "0", str(xmax), str(len(items))]
            for item in items:
                out += [str(x) for x in item[:-1]] + [q(item[-1])]
        return "\n".join(out) + "\n"
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}", "tiers? <exists>",
           f"size = {len(tiers)}", "item []:"]
    for k, (name, items) in enumerate(tiers, start=1):
        points = len(items[0]) == 2
        out += [f"    item [{k}]:", f'        class = "{"TextTier" if points else "IntervalTier"}"', f"        name = {q(name)}",
                "        xmin = 0", f"        xmax = {xmax}", f"        {'points' if points else 'intervals'}: size = {len(items)}"]
        for i, item in enumerate(items, start=1):
            if points:
                out += [f"        points [{i}]:", f"            number = {item[0]}", f"            mark = {q(item[1])}"]
            else:
                out += [f"        intervals [{i}]:", f"            xmin = {item[0]}", f"            xmax = {item[1]}",
                        f"            text = {q(item[2])}"]
    return "\n".join(out) + "\n"


WORDS = [(0, 2.2, ""), (2.2, 2.6, "I"), (2.6, 3.0, "feel"), (3.0, 3.5, "quite"), (3.5, 4.1, "tired"),
         (4.1, 4.4, "sp"), (4.4, 5.0, "today"), (5.0, 6, "sil")]
PHONES = [(0, 2.2, "")] + [(round(2.2 + 0.08 * i, 2), round(2.2 + 0.08 * (i + 1), 2), p)
                           for i, p in enumerate("a f iː l k w aɪ t t aɪ ə d".split())] + [(3.16, 6, "")]
INTERVIEWER = [(0, 2.0, "How are you feeling today?"), (2.0, 6, "")]
THREE_TIERS = [("phones", PHONES), ("words", WORDS), ("Interviewer", INTERVIEWER)]


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_textgrid_uses_every_speakers_word_tier_never_the_phones(tmp_path, short, encoding):
    p = tmp_path / "a.TextGrid"
    p.write_bytes(textgrid(THREE_TIERS, 6, short).encode(encoding))  # utf-16: with a BOM, as Praat writes it
    t = read_transcript(p)
    assert [(c.start, c.end, c.text, c.speaker) for c in t.cues] == [
        (0.0, 2.0, "How are you feeling today?", "Interviewer"),
        (2.2, 2.6, "I", None), (2.6, 3.0, "feel", None), (3.0, 3.5, "quite", None), (3.5, 4.1, "tired", None),
        (4.4, 5.0, "today", None),  # "sp" and "sil" are silences, not words
    ]
    assert t.speakers == ["Interviewer"]
    assert len(t.warnings) == 1 and str(p) in t.warnings[0]
    assert "used 'words', 'Interviewer'" in t.warnings[0] and "'phones' (phones)" in t.warnings[0]


def test_textgrid_tiers_told_apart_by_content_and_mfa_names(tmp_path):
    p = tmp_path / "a.TextGrid"
    # unhelpful names: the phone tier is known by its short labels on short intervals
    p.write_text(textgrid([("tier 1", PHONES), ("Mary", WORDS)], 6))
    t = read_transcript(p)
    assert t.words == ["I", "feel", "quite", "tired", "today"] and {c.speaker for c in t.cues} == {"Mary"}
    # Montreal Forced Aligner: "<speaker> - words" and "<speaker> - phones"
    p.write_text(textgrid([("Sam - words", WORDS), ("Sam - phones", PHONES), ("Ann - words", INTERVIEWER)], 6, short=True))
    t = read_transcript(p)
    assert t.speakers == ["Ann", "Sam"] and t.words[:5] == ["How", "are", "you", "feeling", "today?"]
    assert "ə" not in t.words


def test_textgrid_tier_chosen_by_name(tmp_path):
    p = tmp_path / "a.TextGrid"
    p.write_text(textgrid(THREE_TIERS, 6))
    t = read_transcript(p, tier=["interviewer"])  # case does not matter
    assert [(c.text, c.speaker) for c in t.cues] == [("How are you feeling today?", "Interviewer")] and not t.warnings
    assert read_transcript(p, tier=["phones"]).words[:3] == ["a", "f", "iː"]  # asked for: used
    with pytest.raises(HilbertError) as e:
        read_transcript(p, tier=["Participant", "words"])
    msg = str(e.value)
    assert msg.startswith(f"{p}: no tier named 'Participant'") and "'phones', 'words', 'Interviewer'" in msg
    assert "\n" not in msg


def test_textgrid_with_only_phones_asks_for_a_tier(tmp_path):
    p = tmp_path / "a.TextGrid"
    p.write_text(textgrid([("phones", PHONES)], 6))
    with pytest.raises(HilbertError, match=r"no word or utterance tier.*'phones' \(phones\).*--tier"):
        read_transcript(p)


def test_textgrid_point_tier_words_last_until_the_next_point(tmp_path):
    p = tmp_path / "a.TextGrid"
    points = [(1.0, "hello"), (1.3, "there"), (3.0, "<sil>"), (3.2, "friend")]
    p.write_text(textgrid([("noise", [(0, 4, "door")]), ("Mary", points)], 3.4))
    t = read_transcript(p)
    assert [(c.start, round(c.end, 3), c.text, c.speaker) for c in t.cues] == [
        (1.0, 1.3, "hello", "Mary"), (1.3, 1.8, "there", "Mary"), (3.2, 3.4, "friend", "Mary")]
    # a point tier beside a word interval tier is left alone unless it is named as words
    p.write_text(textgrid([("events", [(0.5, "click")]), ("words", WORDS)], 6))
    assert read_transcript(p).words == ["I", "feel", "quite", "tired", "today"]


VTT_SPEAKERS = """WEBVTT

00:00:01.000 --> 00:00:03.000
<v Dr. Lee>How did you sleep?</v>

00:00:03.000 --> 00:00:06.000
<v.loud Sam>Not well &amp; not long.</v>
I woke up at four.

00:00:06.000 --> 00:00:08.000
<v Dr. Lee>- Really?</v>
<v Sam>- Yes, [sighs] really.</v>

00:00:08.000 --> 00:00:09.000
- (laughs) Okay.
"""


def test_vtt_voice_tags_are_speakers_and_dashes_go(tmp_path):
    p = tmp_path / "a.vtt"
    p.write_text(VTT_SPEAKERS, encoding="utf-8")
    cues = [(round(c.start, 3), round(c.end, 3), c.text, c.speaker) for c in read_transcript(p).cues]
    split = round(6.0 + 2.0 * 8 / 21, 3)  # the two-speaker cue shares its time by text length
    assert cues == [
        (1.0, 3.0, "How did you sleep?", "Dr. Lee"),
        (3.0, 6.0, "Not well & not long. I woke up at four.", "Sam"),
        (6.0, split, "Really?", "Dr. Lee"), (split, 8.0, "Yes, really.", "Sam"),
        (8.0, 9.0, "Okay.", "Sam"),  # no name: the turn goes on
    ]


SRT_SPEAKERS = r"""1
00:00:01,000 --> 00:00:03,000
{\an8}INTERVIEWER: Did you watch Tom &amp; Jerry?

2
00:00:03,500 --> 00:00:06,000
PARTICIPANT: Yes\Nevery day [laughs]\hand night ♪ la la ♪
(inaudible) with (well, almost) everyone.

3
00:00:06,000 --> 00:00:06,000
a hidden cue

4
00:00:06,500 --> 00:00:08,000
<i>Note: it was fun.</i>
"""


def test_srt_prefixes_entities_ass_tags_labels_and_hidden_cues(tmp_path):
    p = tmp_path / "a.srt"
    p.write_text(SRT_SPEAKERS, encoding="utf-8")
    t = read_transcript(p)
    assert [(c.start, c.end, c.text, c.speaker) for c in t.cues] == [
        (1.0, 3.0, "Did you watch Tom & Jerry?", "INTERVIEWER"),
        (3.5, 6.0, "Yes every day and night with (well, almost) everyone.", "PARTICIPANT"),
        (6.5, 8.0, "Note: it was fun.", "PARTICIPANT"),  # "Note:" is prose, not a speaker
    ]
    assert len(t.warnings) == 1 and "1 zero-length cue(s) dropped" in t.warnings[0] and "6.000 s" in t.warnings[0]


def test_capitalised_names_are_speakers_only_in_a_file_of_turns(tmp_path):
    p = tmp_path / "a.srt"
    p.write_text("1\n00:00:01,000 --> 00:00:02,000\nMary: hi\n\n2\n00:00:02,000 --> 00:00:03,000\nTom: hello\n\n"
                 "3\n00:00:03,000 --> 00:00:04,000\nMary: how are you\n")
    # Mary leads two lines, so the file is one of turns, and Tom (once) is a speaker too
    assert [(c.text, c.speaker) for c in read_transcript(p).cues] == [
        ("hi", "Mary"), ("hello", "Tom"), ("how are you", "Mary")]
    p.write_text("1\n00:00:01,000 --> 00:00:02,000\nMary: hi\n\n2\n00:00:02,000 --> 00:00:03,000\nthen we left\n")
    assert [(c.text, c.speaker) for c in read_transcript(p).cues] == [("Mary: hi", None), ("then we left", None)]


@pytest.mark.parametrize("fmt,line", [("srt", "00:00:07,000 --> 00:00:11:890"), ("vtt", "00:00:07.000 --> 00:00:11"),
                                      ("vtt", "00:00:07.000 --> 00:00:61.000")])
def test_malformed_timing_line_is_an_error_with_its_line_number(tmp_path, fmt, line):
    head, sep = ("WEBVTT\n\n", ".") if fmt == "vtt" else ("", ",")
    p = tmp_path / f"a.{fmt}"
    p.write_text(f"{head}1\n00:00:01{sep}000 --> 00:00:03{sep}000\nfirst\n\n2\n{line}\nsecond\n")
    with pytest.raises(HilbertError) as e:
        read_transcript(p)
    number = 6 + head.count("\n")
    assert str(e.value).startswith(f"{p}: line {number}: ") and repr(line) in str(e.value)
    assert str(e.value).endswith(f"expected 'HH:MM:SS{sep}mmm --> HH:MM:SS{sep}mmm'.")


def test_json_speakers(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"segments": [
        {"start": 0.0, "end": 1.5, "text": "How are you?", "speaker": "SPEAKER_00"},
        {"start": 1.0, "end": 3.0, "text": "Fine &amp; you? [laughs]", "speaker": "SPEAKER_01"},
        {"start": 3.0, "end": 4.0, "text": "Good.", "speaker": 2},
        {"start": 4.0, "end": 5.0, "text": "sil"},
        {"start": 5.0, "end": 6.0, "text": "Bye."}]}))
    t = read_transcript(p)
    assert [(c.text, c.speaker) for c in t.cues] == [("How are you?", "SPEAKER_00"), ("Fine & you?", "SPEAKER_01"),
                                                     ("Good.", "2"), ("Bye.", None)]
    assert t.word_speakers == ["SPEAKER_00"] * 3 + ["SPEAKER_01"] * 3 + ["2", None]


def test_plain_text_prefixes_give_turns(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("INTERVIEWER: How are you?\nP: Fine, thanks.\nI slept well.\n\nNote: more below.\nI: Good.\n")
    t = read_transcript(p)
    assert t.text == "How are you? Fine, thanks. I slept well. Note: more below. Good."
    assert t.turns == [("INTERVIEWER", "How are you?"), ("P", "Fine, thanks. I slept well. Note: more below."), ("I", "Good.")]
    assert t.word_speakers == ["INTERVIEWER"] * 3 + ["P"] * 8 + ["I"]
    p.write_text("Note: this is ordinary prose.\nDear Sir: it goes on.\n")
    t = read_transcript(p)
    assert t.text == "Note: this is ordinary prose. Dear Sir: it goes on." and t.speakers == []
