"""What the synthetic interviews of `hilbert demo-data` say (data only; corpus.py builds the corpus).

The interviewee's answers are mostly neutral sentences; a few are revealing: mood sentences (shared
frames, a positive or negative word in the slot). Every sentence follows a neutral opener, so that only
the meaning of the slot words tells the two `mood` classes apart.
Short, plain sentences: the ASR (Whisper tiny.en) should recover them almost verbatim.
"""

QUESTIONS = (
    "How have you been sleeping lately?",
    "Can you tell me about a normal day for you?",
    "How are things at work at the moment?",
    "How do you get on with your family these days?",
    "What did you do last weekend?",
    "How is your appetite?",
    "How do you feel about the next few months?",
    "Do you see your friends much?",
    "What do you do to relax?",
    "How has your energy been this week?",
    "Is there anything you are looking forward to?",
    "How would you describe your mood recently?",
    "Tell me about the last time you went outside for a walk.",
    "How are you finding your hobbies at the moment?",
    "What was the best part of your week?",
    "How do you usually spend your evenings?",
)

OPENERS = (
    "", "", "", "", "Honestly, ", "Well, ", "Most days, ", "Lately, ", "To be honest, ", "I would say ",
    "These days, ", "You know, ",
)

# The mood sentences share their frames: both classes say "work has been ... this week", and only
# the word in the slot ({feel}: how the speaker feels, {thing}: what something was like) differs.
# Many synonyms per class, each rare, so the class is in the meaning (what a sentence encoder sees)
# rather than in a few recurring sounds (which an audio encoder would pick up).
FRAMES = (
    "work has been {thing} this week.",
    "I feel {feel} when I think about my family.",
    "the weekend was {thing}.",
    "my evenings are mostly {thing}.",
    "seeing my friends makes me feel {feel}.",
    "when I wake up in the morning I feel {feel}.",
    "dinner with my sister was {thing}.",
    "I would describe my mood as {feel}.",
    "the walk in the park yesterday was {thing}.",
    "thinking about next year makes me {feel}.",
    "my sleep has been {thing} lately.",
    "after talking to my neighbours I feel {feel}.",
    "the last few days have been {thing}.",
    "at the end of the day I am usually {feel}.",
    "going to the shops on my own is {thing}.",
    "when the phone rings I feel {feel}.",
    "my job at the moment is {thing}.",
    "on Sunday afternoons I feel {feel}.",
    "cooking for the family has been {thing}.",
    "most of the time I feel {feel}.",
    "the trip to the seaside was {thing}.",
    "my partner says I seem {feel}.",
    "the holidays this year were {thing}.",
    "when I look in the mirror I feel {feel}.",
    "the visit from my parents was {thing}.",
    "in the evenings I often feel {feel}.",
    "my garden this spring has been {thing}.",
    "at work meetings I feel {feel}.",
    "the birthday party on Saturday was {thing}.",
    "when I go to bed I feel {feel}.",
)
INTENSIFIERS = ("", "", "", "really ", "quite ", "very ", "pretty ")  # shared by both classes

FEEL = {
    "positive": ("happy", "cheerful", "relaxed", "hopeful", "calm", "content", "proud", "grateful", "glad",
                 "excited", "confident", "peaceful", "energetic", "refreshed", "optimistic", "safe", "loved",
                 "strong", "rested", "lucky", "joyful", "satisfied", "motivated", "at ease"),
    "negative": ("sad", "miserable", "hopeless", "anxious", "tense", "lonely", "exhausted", "empty",
                 "worthless", "ashamed", "gloomy", "depressed", "worried", "afraid", "numb", "guilty",
                 "restless", "drained", "helpless", "desperate", "low", "useless", "unhappy", "on edge"),
}
THING = {
    "positive": ("wonderful", "lovely", "great", "delightful", "fantastic", "brilliant", "pleasant",
                 "enjoyable", "rewarding", "relaxing", "uplifting", "fun", "amazing", "encouraging",
                 "perfect", "cosy", "marvellous", "terrific", "nice", "beautiful", "cheerful", "a joy"),
    "negative": ("awful", "terrible", "dreadful", "horrible", "exhausting", "depressing", "painful",
                 "unbearable", "stressful", "miserable", "bleak", "grim", "upsetting", "draining",
                 "pointless", "frightening", "tiring", "disappointing", "sad", "lonely", "hard", "a struggle"),
}


def mood_sentence(frame: str, intensifier: str, word: str) -> str:
    """Fill `frame`'s slot; `intensifier` goes before the word ("really tired") unless it is a phrase."""
    if " " in word:  # "at ease", "a joy": no intensifier in front
        intensifier = ""
    return frame.replace("{feel}", intensifier + word).replace("{thing}", intensifier + word)


NEUTRAL = (
    "I usually get up early on weekdays.",
    "I take the train into town on Mondays.",
    "we live in a small flat near the station.",
    "I have a cup of tea after lunch.",
    "my sister lives an hour away by train.",
    "on Tuesdays I do the shopping at the supermarket.",
    "I watch the news in the evening.",
    "the doctor changed my appointment to next month.",
    "I work in a large office in the city.",
    "my neighbour has a dog called Max.",
    "we normally eat dinner quite early.",
    "I read a book on Sunday mornings.",
    "the weather has been quite mixed this week.",
    "I have two brothers and one sister.",
    "I moved to this town ten years ago.",
    "I keep a calendar on the kitchen wall.",
    "the library is open late on Thursdays.",
    "I walk to the post office on Fridays.",
    "we bought a new washing machine last month.",
    "my phone reminds me of my appointments.",
)

