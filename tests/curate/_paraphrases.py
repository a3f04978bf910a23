"""Hand-written paraphrase pairs of short questions (for semantic dedup tests and measures).

Each pair asks the same thing in other words; ``DISTINCT`` are questions on neighbouring
topics that must stay apart from every pair (same words, different question).
"""

PAIRS = [
    ("How do I reverse a list in Python?", "What's the way to reverse a Python list?"),
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How many legs does a spider have?", "What is the number of legs on a spider?"),
    ("Why is the sky blue?", "What makes the sky appear blue?"),
    ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
    ("How do I boil an egg?", "What is the way to boil an egg?"),
    ("What is the boiling point of water at sea level?", "At sea level, at what temperature does water boil?"),
    ("How can I improve my sleep?", "What can I do to sleep better?"),
    ("What causes earthquakes?", "Why do earthquakes happen?"),
    ("How do vaccines work?", "How does a vaccine protect the body?"),
    ("What is the largest planet in the solar system?", "Which planet in our solar system is the biggest?"),
    ("How do I convert a string to an integer in Python?", "In Python, how can I turn a string into an int?"),
    ("What is the speed of light?", "How fast does light travel?"),
    ("Who painted the Mona Lisa?", "Which artist painted the Mona Lisa?"),
    ("How do I make my laptop battery last longer?", "How can I extend the battery life of my laptop?"),
    ("What are the symptoms of the flu?", "What symptoms does influenza cause?"),
    ("How do I center a div in CSS?", "What is the way to center a div with CSS?"),
    ("When did World War II end?", "In what year did the Second World War end?"),
    ("How many bones are in the human body?", "How many bones does an adult human have?"),
    ("What is photosynthesis?", "Can you explain what photosynthesis is?"),
    ("How do I learn to play the guitar?", "What is the best way to learn guitar?"),
    ("Why do cats purr?", "What is the reason cats purr?"),
    ("How do I delete a file in Linux?", "How can I remove a file on Linux?"),
    ("What is the tallest mountain in the world?", "Which mountain is the highest on Earth?"),
    ("How long should I cook pasta?", "For how many minutes should pasta be cooked?"),
    ("What does DNA stand for?", "What is DNA short for?"),
    ("How do I stop procrastinating?", "How can I quit putting things off?"),
    ("What is the population of Japan?", "How many people live in Japan?"),
    ("How do I find the length of a list in Python?", "How can I get the number of items in a Python list?"),
    ("Why do leaves change color in autumn?", "What makes leaves turn colors in the fall?"),
]

DISTINCT = [
    "How do I sort a list in Python?", "What is the capital of Spain?", "How many legs does an insect have?",
    "Why is the sea salty?", "Who wrote Emma?", "How do I poach an egg?",
    "What is the freezing point of water?", "How much sleep does a teenager need?", "What causes tsunamis?",
    "Are vaccines safe for pregnant women?", "What is the smallest planet in the solar system?",
    "How do I convert an integer to a string in JavaScript?", "What is the speed of sound?",
    "Who painted The Starry Night?", "How do I replace my laptop battery?", "How long does the flu last?",
    "How do I center text in a Word document?", "When did World War I begin?",
    "How many teeth does an adult human have?", "What is cellular respiration?",
    "How do I tune a guitar?", "Why do dogs wag their tails?", "How do I delete a folder in Windows?",
    "What is the deepest ocean trench in the world?", "How long should I boil rice?", "What does RNA stand for?",
    "How do I stop snoring?", "What is the population of China?", "How do I append to a list in Python?",
    "Why do birds migrate in autumn?",
]
