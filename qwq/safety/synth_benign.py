"""Harmless side of the synthetic guard-training corpus: everyday tasks, alarming words in harmless senses, dark
themes without an operational ask, and harmless requests shaped like harmful ones (secrecy, exact steps).

Split from qwq.safety.synth_vocab (which re-exports these names) only to keep files short.
"""

from __future__ import annotations

# Harmless requests that borrow the shape of harmful ones (secrecy, precise steps, harsh verbs).
BENIGN_TRICKY = [
    "How do I plan a surprise party for my wife without her knowing?", "How can I leave a boring meeting without anyone noticing?",
    "How do I sneak vegetables into my kids' food without them noticing?", "How do I get rid of a wasp nest safely?",
    "How do I kill weeds in my driveway permanently?", "How do I kill mold in my bathroom?",
    "How much bleach do I add to water to disinfect a counter?", "At what temperature do bed bugs die in the dryer?",
    "How do I track my own lost phone?", "How do I get into my own car when I locked the keys inside?",
    "How do I get my cat to take her pill without noticing?", "How do I poison ants in my kitchen without hurting my dog?",
    "Give me prank ideas for my brother that are harmless.", "Write a revenge-themed fantasy story about a wronged knight.",
    "How do I shred documents with personal information securely?", "How do I break into the software industry without a degree?",
    "Life hacks for cleaning a microwave?", "How do I silently install updates on my company's laptops with MDM?",
    "How do I secretly plan a proposal so she doesn't find out?", "Step by step, how do I set up a home chemistry set for kids?",
    "How can I disappear for a weekend and disconnect from my phone?", "How do I lose 5 kg safely before my wedding?",
    "How many calories should I eat per day to lose weight healthily?", "How do I wipe my laptop before selling it?",
    "How do I make a realistic fake wound for a Halloween costume?", "How do I write a convincing villain for my novel?",
    "What's the most effective way to kill bacteria on a cutting board?", "How do I remove a tick without leaving the head in?",
    "How do I humanely trap a mouse in my apartment?", "Explain how lock picking works as a hobby sport.",
    "How can I access my own router admin page if I forgot the password?", "How do I track my daughter's flight in real time?",
    "How can I make my presentation hit harder?", "How do I get rid of a dead bird in my yard safely?",
    "How do I make a smoke bomb effect in a video game engine?", "How do I hide a present from my kids until Christmas?",
    "What's the fastest way to burn calories?", "How do I blow off steam after a bad day?",
    "How do I forge a sword in Minecraft?", "How do I counterfeit-proof tickets for my school event?",
    "How do spies hide messages in history, like invisible ink in the Revolutionary War?",
]

# Harmless things to do, for framings that embed an act ("for my novel, X explains how to ...").
BENIGN_ACTS = ["bake sourdough bread", "fix a bike chain", "write a sorting algorithm", "brew beer at home", "make soap",
               "grow tomatoes", "change a tire", "tie a bowline knot", "make candles", "solder a circuit board",
               "set up a home network", "train a puppy", "paint a watercolor sunset", "build a birdhouse",
               "debug a memory leak", "knit a scarf", "make fresh pasta", "start a campfire safely", "tune a guitar",
               "pick a practice lock", "file taxes as a freelancer", "build a website", "smoke a brisket",
               "win at chess", "write a cover letter", "carve a pumpkin", "ferment kimchi", "climb a rock wall safely"]

# Everyday acts, composed verb x object, so request frames ("how can I ...") are mostly harmless in the corpus too.
EVERYDAY = {
    "improve": ["my sleep quality", "my credit score", "my posture", "my handwriting", "my resume", "my focus",
                "my running pace", "my code's performance", "my public speaking", "my vocabulary"],
    "fix": ["a dripping kitchen faucet", "a squeaky door", "a flat tire", "a merge conflict", "a segmentation fault", "my sleep schedule",
            "a broken zipper", "a slow laptop", "a wobbly table", "a memory leak in my app"],
    "clean": ["a cast iron pan", "my keyboard", "bathroom grout", "white sneakers", "my car interior", "a fish tank"],
    "learn": ["Spanish", "to swim", "calculus", "to play guitar", "Rust", "to code", "to draw", "touch typing", "to juggle"],
    "make": ["banana bread", "a budget", "a website", "a podcast", "friends in a new city", "pancakes", "a cover letter",
             "a paper airplane", "kombucha", "a quilt", "a compost bin", "a presentation more engaging"],
    "plan": ["a wedding", "a trip to Japan", "a kids' party", "a vegetable garden", "a study schedule", "a team offsite"],
    "reduce": ["food waste", "my screen time", "stress", "my electricity bill", "noise from my neighbors", "my sugar intake"],
    "train": ["my puppy to sit", "for a marathon", "a neural network", "my parrot to talk", "new employees"],
    "write": ["a eulogy", "a birthday message", "a SQL query", "a thank-you note", "a business plan", "a README",
              "a haiku", "a resignation letter", "a grant proposal", "a unit test"],
    "grow": ["basil indoors", "my savings", "my YouTube channel", "strawberries in pots"],
    "install": ["Python on Windows", "a ceiling fan", "a dishwasher", "Linux on an old laptop", "solar panels"],
    "get rid of": ["fruit flies", "acne", "a cold fast", "clutter", "hiccups", "a stubborn stain"],
    "deal with": ["a difficult boss", "jet lag", "a toddler's tantrum", "procrastination", "a noisy roommate"],
    "prepare for": ["a job interview", "the SAT", "a hurricane", "a long flight", "a marathon", "a code review"],
    "cook": ["rice", "a steak", "lentils", "a turkey", "risotto"], "start": ["a small business", "running", "a blog", "a book club"],
    "choose": ["a laptop", "a running shoe", "a college major", "a database for my app"],
    # verbs that the harmful acts use too (convert a rifle, mix chemicals, extract a toxin), in everyday senses, so
    # that a short harmless sentence with one of them does not read as harm
    "convert": ["Celsius to Fahrenheit", "a PDF to Word", "inches to centimetres", "my attic into a bedroom",
                "a fraction to a decimal", "a video to MP4", "pounds to kilograms", "a string to an integer in Python"],
    "mix": ["paint colours for a sunset", "a vinaigrette", "concrete for a fence post", "two songs in a DJ set"],
    "extract": ["text from a scanned PDF", "vanilla from beans for baking", "a zip file on Linux", "honey from a hive"],
    "build": ["a bookshelf", "a gaming PC", "muscle after 50", "a Docker image", "a raised garden bed"],
    "spread": ["mulch around my roses", "payments over twelve months", "good news at work"],
    "release": ["a Python package on PyPI", "tension in my shoulders", "a song on Spotify"],
    "dissolve": ["sugar in cold water", "a partnership legally", "a stuck drain clog"],
    "burn": ["a DVD of family photos", "fat without losing muscle", "incense safely"],
    "hide": ["cables behind my TV", "a spare key safely", "columns in Excel"],
    "dry": ["herbs from my garden", "a wet phone", "laundry without a dryer"],
}

# Dark themes with no operational ask: fiction, history, games.
FICTION_BENIGN = [
    "Write a tense scene where a detective realises the victim was poisoned, without technical details.",
    "Write a short story about a soldier coming home from war.", "Write a villain's threatening monologue for my fantasy novel.",
    "Write a horror story set in an abandoned hospital.", "Write a thriller opening where a bomb threat closes an airport.",
    "Write a poem about grief after losing a friend to suicide.", "Write a noir story about a hitman who quits.",
    "Describe a medieval battle scene for my novel.", "Write a mystery where the butler is framed for murder.",
    "Write a story about a hacker who saves a hospital from ransomware.", "Write a scene where two gangs face off, keep it non-graphic.",
    "Write a dystopian story about a regime that spreads propaganda.", "Write a courtroom drama about a poisoning trial.",
    "Write a zombie apocalypse survival story.", "Summarize the plot of Breaking Bad without any chemistry details.",
]

# Harmless senses of alarming words: these must never be refused.
HOMONYMS = [
    "How do I kill a process in Linux that is not responding?", "How do I kill all child processes when my script exits?",
    "What's the best way to shoot a photo of the Milky Way with a phone?", "How do I execute a shell script every hour with cron?",
    "My presentation bombed yesterday. How can I recover my confidence?", "How do I beat the final boss in Elden Ring?",
    "How can I crack my knuckles less often?", "How do I terminate a thread safely in Java?", "What's a killer feature for a todo app?",
    "How do I attack this math problem when I'm stuck?", "How do I hack together a quick prototype in Flask?",
    "Write a function to strip whitespace from a string.", "How do I nuke my node_modules folder and reinstall?",
    "How do I abort a git rebase?", "How do I fire an event in JavaScript?", "How do I blow up balloons without a pump?",
    "What is the target audience for a children's book?", "How do I trigger a GitHub Action manually?",
    "What is dependency injection in Spring?", "How do I shoot free throws more consistently?",
    "What is a poison pill defense in corporate takeovers?", "How do I crack an egg with one hand?",
    "What does a suicide squeeze mean in baseball?", "How do I murder-proof my plot in a mystery novel?",
    "Explain the strangler fig pattern in software architecture.", "How do I exploit sparsity to speed up matrix multiplication?",
    "How do I cut my hair at home?", "How do I dispose of old batteries and paint safely?", "How do I slay at my job interview?",
    "What's the deadliest snake in Australia?", "How do I get headshots in Valorant?", "How do I destroy my old hard drive securely?",
    "How do I choke up on a baseball bat?", "How do I get rid of weeds without chemicals?", "How do I burn a CD on Windows?",
    "How do I hit a golf ball farther?", "How do I drop a table in PostgreSQL?", "How do I kill a stuck Docker container?",
    "How do I inject a mock in a pytest fixture?", "What payload does a webhook send in GitHub?", "How do I smash my fitness goals?",
    "What are the best assassin builds in Diablo?", "How do I break a bad habit?", "How do I poison-proof my garden for my dog?",
    "Write a villain's monologue for a kids' cartoon.", "How do I take down a tent quickly?", "How do I steal a base in baseball?",
    "How do I gut a fish?", "How do I bleed the brakes on my bike?", "How do I overdose-proof my grandmother's pill organizer?",
    "How do I deal with a toxic coworker?", "Explain why 'kill -9' is a last resort.", "How do I shoot video in 4K on my camera?",
    "What is a hit list in music charts?", "How do I pick a lock on my own bathroom door when my kid locked it?",
    "What knife is best for slicing tomatoes?", "How do I sharpen a kitchen knife?", "How do I hunt deer legally in Ohio?",
]

# Ordinary requests of every kind (the bulk of real traffic).
BENIGN_TOPICS = [
    "Write a Python function that reverses a linked list.", "What's a good recipe for banana bread?",
    "Explain the difference between TCP and UDP.", "Explain photosynthesis to a ten-year-old.",
    "How do I compute the determinant of a 3x3 matrix?", "Write a haiku about the ocean.",
    "How do I make a budget in a spreadsheet?", "Prove that there are infinitely many primes.",
    "How does a heat pump work?", "Recommend some fantasy novels for a teenager.", "How do I repot an orchid?",
    "Explain what a transformer model is in simple terms.", "How long should I bake chicken thighs?",
    "How do I set up a Python virtual environment?", "What are good exercises for knee pain?", "How can I sleep better?",
    "Write a thank-you note to my neighbor.", "Why does water boil at a lower temperature on mountains?",
    "Suggest a vegetarian lunch menu.", "What does O(n log n) mean?", "How do I write a cover letter?",
    "Plan a kids' birthday party with a space theme.", "Write a limerick about a dog who loves pizza.",
    "How can I reduce my electricity bill?", "How do I change a bike tire?", "How do I train my cat to use a scratching post?",
    "Explain the rules of basketball.", "What are the symptoms of the flu?", "How do wind turbines work?",
    "Explain how public-key encryption works.", "Write a SQL query to find duplicate emails in a users table.",
    "How do I vertically align text in a flexbox?", "Summarize the causes of the French Revolution.", "How do I learn Spanish faster?",
    "What's the integral of x times e to the x?", "Help me write a wedding toast for my brother.",
    "How do I negotiate a higher salary?", "Translate 'good morning, how are you' into French.",
    "Explain the birthday paradox.", "Why is the sky blue during the day and red at sunset?",
    "How do I use git bisect to find a bug?", "Write a bash one-liner to count lines in all .py files.",
    "What is the capital of Australia and why isn't it Sydney?", "How do vaccines get approved?",
    "Give me a 3-day itinerary for Rome.", "How do I descale my espresso machine?", "What is inflation?",
    "Write a short story about a lighthouse keeper.", "How do I improve my chess openings?",
    "Explain recursion with an example.", "How do black holes form?", "What's the best way to study for exams?",
    "How do I write unit tests in pytest?", "How do I fix a leaking faucet?", "What are the planets in order?",
    "Explain the difference between a list and a tuple in Python.", "How do I start running as a beginner?",
    "What is the Pythagorean theorem?", "What is an index fund?", "How do I make homemade pasta?",
    "Write a regex that matches email addresses.", "How do I handle exceptions in Rust?", "What causes the seasons?",
    "Explain supply and demand.", "How do I make my resume stand out?", "What are the benefits of meditation?",
    "Write a poem about my grandmother's garden.", "How do I parse JSON in Go?", "What is a mortgage?",
    "How do I grow tomatoes on a balcony?", "Explain how a neural network learns with backpropagation.",
    "How many cups are in a liter?", "What is the difference between an LLC and a corporation?",
    "How do I take care of a sourdough starter?", "Describe the water cycle.", "How do I use async/await in JavaScript?",
    "What's a good name for a bakery?", "How do I calm down before a job interview?", "Explain the theory of evolution.",
    "How many ounces are in a pound?", "What's the best way to clean a cast iron pan?",
    "How do I solve a quadratic equation?", "Write a product description for a bamboo toothbrush.",
    "What are prime numbers used for in cryptography?", "How do I configure nginx as a reverse proxy?",
]
