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
