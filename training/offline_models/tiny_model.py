"""The ``tiny`` offline model: a 2-layer Qwen2-style model with a byte-level BPE tokenizer, both
trained here in about a minute on a small chat corpus that ships in this file.

It is pretrained just enough that a LoRA adapter can learn on top of it (a random model cannot),
which makes it the base for fast end-to-end tests of training and serving.

Tested in ``tests/training/test_offline_models.py`` (the tiny model trains and answers).
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from training.offline_models.cache import cached_build

# ChatML as Qwen2 writes it, minus Qwen's default system prompt: Doppel always supplies its own
# persona, and a hidden default would make training and serving prompts drift apart.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

TINY_RECIPE = {
    "vocab_size": 4096,  # an upper bound: the corpus runs out of merges first
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,  # head_dim 64: what vLLM's CPU attention kernels expect
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "conversations": 240,
    "steps": 300,
    "batch_size": 16,
    "lr": 3e-3,
    "seed": 1234,
}

# One exchange per line: "user | assistant". Short, varied, casual: the register of the chats
# Doppel clones, so adapters trained in tests start from a model that has seen this kind of text.
TINY_CORPUS = """\
hey, how are you? | pretty good, just got back from a run. you?
what are you up to tonight? | probably cooking pasta and watching a movie
did you see the game last night? | yes!! that last minute goal was unreal
are we still on for lunch tomorrow? | yep, noon at the usual place
can you send me the notes from class? | sure, give me five minutes
what time is it there? | almost midnight, i should sleep lol
how was the trip? | amazing, the mountains were so quiet and the food was great
do you want to play later? | sure, ping me after eight
i lost my keys again | check the jacket pocket, it is always the jacket pocket
what's your favourite food? | ramen, no contest
any movie recommendations? | watch something old, like a western. trust me
good morning! | morning! coffee first, words later
i'm so tired today | same. this week is taking forever
did you finish the report? | almost, just the charts left
the train is late again | of course it is. how late?
happy birthday!! | thank you!! 🎉 it's been a lovely day
are you coming to the party? | wouldn't miss it. should i bring snacks?
what do you think about the new phone? | the camera is nice but the price is silly
can you help me move on saturday? | yeah, i can come in the morning
i got the job!! | no way, congrats!! we have to celebrate
it's raining so hard here | stay inside and make tea, that's the rule
what are you reading? | a sci-fi book about a ship that never lands
do you like cats or dogs? | cats. they have opinions and i respect that
where should we eat? | the thai place near the station?
my code doesn't compile | paste the error, let's look at it together
how do i fix a flat tire? | take the wheel off, find the hole, patch it, pump it up
what's the plan for the weekend? | hiking on saturday, nothing on sunday
thanks for yesterday | anytime, it was fun
sorry i'm late | no worries, we just sat down
can you call me? | give me ten minutes, i'm on the bus
what's the weather like? | sunny and cold, bring a scarf
i can't decide what to wear | the blue shirt. always the blue shirt
do you know a good song? | put on some old jazz, it fixes everything
how's your mom doing? | much better, thanks for asking
let's get coffee | yes please, in twenty minutes?
what did the teacher say? | the exam moved to next friday
i burned the rice | classic. order pizza and try again tomorrow
who won? | we did, by two points
is the shop open today? | until six i think
how much was the ticket? | about forty, not bad
did you feed the cat? | yes, twice, she lied to you
are you awake? | unfortunately yes
what's for dinner? | soup and bread, nothing fancy
how do you stay so calm? | lots of tea and low expectations haha
can i borrow your bike? | sure, the lock code is the usual one
i miss you | miss you too, come visit soon
what are you doing? | staring at a spreadsheet and questioning my life choices
do you want to watch the new show? | yes! no spoilers please
how was work? | long. the printer broke twice
we should travel somewhere | yes, somewhere warm with a beach
did you get my message? | just saw it, sorry, phone was dead
what should i cook? | eggs, rice and whatever is in the fridge
the wifi is down again | restart the router and pray
what's your opinion on pineapple pizza? | it's fine and people need to relax
are you free on friday? | after five, yes
i'm bored | go for a walk, it works every time
how do you say thanks in japanese? | arigatou, or arigatou gozaimasu to be polite
what is the capital of france? | paris
what is two plus two? | four
tell me a joke | why did the scarecrow win an award? he was outstanding in his field
who are you? | just me, texting from the couch
what's your name? | you know my name, silly
where are you? | at home, finally
when are you back? | sunday night, late train
why are you laughing? | the dog just fell off the sofa 😂
ok see you later | see ya!
good night | night! sleep well
lol | i know right
that's so funny | i laughed way too loud at that
ugh mondays | mondays should be illegal
can you keep a secret? | always. spill
i need advice | sure, what's going on?
we won the match! | let's go!! 🏆
i'm learning to cook | nice, start with omelettes, they forgive a lot
what music do you like? | a bit of everything, lately a lot of indie folk
do you want tea? | yes please, no sugar
the concert was incredible | jealous! was the sound good?
the bus is packed today | walk then, it's nice out
did you water the plants? | oops. doing it now
what's the password for the wifi? | it's on the fridge, under the magnet
i think i'm getting sick | drink water, eat soup, sleep early
how was the dentist? | fine, no holes this time
can you pick up milk on the way? | sure, anything else?
my laptop just died | did you save? please tell me you saved
where did you park? | level three, next to the blue van
the meeting got cancelled | best news all week
did you call the landlord? | yes, he'll fix the heater on thursday
i'm at the station | coming, two minutes!
what are we getting for grandma? | flowers and a nice card, she loves cards
do you remember her name? | emma, i think. or emily?
how long does the cake bake? | about forty minutes, check it with a fork
is it cold outside? | freezing, wear gloves
the kids are finally asleep | enjoy the silence while it lasts
should i text him back? | wait until tomorrow, sleep on it
which one is better, red or green? | green, definitely
how's the new apartment? | small but the light is gorgeous in the morning
are you still mad at me? | no, we're good. i promise
can we talk later? | of course, call me whenever
i finished the marathon!! | legend!! how are your legs?
the package never arrived | ugh, write to the shop and ask for a refund
did you eat yet? | not yet, i'm starving
what's the address again? | twelve river street, second floor
how do i reset my password? | click forgot password and check your email
the cat knocked over my coffee | she has no regrets, i can tell
want to go to the beach tomorrow? | only if we leave early
what's your plan after graduation? | travel a bit, then look for work
i can't sleep | me neither. want to talk?
did you like the book? | loved it, the ending made me cry
i'm proud of you | that means a lot, thank you
how are the exams going? | two down, three to go
pizza or burgers tonight? | pizza. always pizza
your brother called | ok, i'll call him back after dinner
can you believe this weather? | snow in april, unbelievable
是不是要下雨了？ | 看起来是，带伞吧
今天吃什么？ | 火锅吧，好久没吃了
"""


def corpus_pairs() -> list[tuple[str, str]]:
    """The (user, assistant) exchanges the tiny model was pretrained on."""
    pairs = []
    for line in TINY_CORPUS.strip().splitlines():
        user, assistant = (part.strip() for part in line.split("|"))
        pairs.append((user, assistant))
    return pairs


def corpus_conversations(n: int, seed: int) -> list[list[dict[str, str]]]:
    """Deterministic chat conversations (1-3 exchanges, some with a persona) from the corpus."""
    rng = random.Random(seed)
    pairs = corpus_pairs()
    names = ["Sam", "Alex", "Mia", "Leo", "Kai"]
    convs = []
    for _ in range(n):
        conv: list[dict[str, str]] = []
        if rng.random() < 0.5:
            persona = f"You are {rng.choice(names)}. Reply like you do in chats."
            conv.append({"role": "system", "content": persona})
        for user, assistant in rng.sample(pairs, rng.randint(1, 3)):
            conv += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        convs.append(conv)
    return convs


def build_tiny_model(cache_dir: Path, *, progress: bool = True) -> Path:
    """Build (or reuse) the tiny pretrained Qwen2-style chat model; returns its directory."""
    recipe = {**TINY_RECIPE, "corpus": TINY_CORPUS, "chat_template": CHATML_TEMPLATE}
    build = functools.partial(_build_tiny, progress=progress)
    return cached_build(cache_dir, "tiny", recipe, build)


def _train_tokenizer(vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    # AutoTokenizer maps a qwen2 config to Qwen2Tokenizer, which rebuilds the normalizer and
    # pre-tokenizer itself and keeps only vocab and merges from tokenizer.json. Training with
    # that exact pipeline keeps the tokens seen in pretraining equal to the tokens at load time.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 bytes, so any text (emoji, CJK) encodes and round-trips although the corpus
        # is mostly English.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([t for pair in corpus_pairs() for t in pair], trainer=trainer)
    bpe = json.loads(tok.to_str())["model"]
    return Qwen2Tokenizer(
        vocab=bpe["vocab"],
        merges=[tuple(m) for m in bpe["merges"]],
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
        chat_template=CHATML_TEMPLATE,
        model_max_length=TINY_RECIPE["max_position_embeddings"],
    )


def _build_tiny(out: Path, progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    r = TINY_RECIPE
    tokenizer = _train_tokenizer(r["vocab_size"])
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    # Fork the RNG so the build is deterministic without disturbing the caller's seed state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r["seed"])
        config = Qwen2Config(
            # Rounded up to a multiple of 64 like real checkpoints; ids past len(tokenizer)
            # are never produced and only learn to stay unlikely.
            vocab_size=-(-len(tokenizer) // 64) * 64,
            hidden_size=r["hidden_size"],
            intermediate_size=r["intermediate_size"],
            num_hidden_layers=r["num_hidden_layers"],
            num_attention_heads=r["num_attention_heads"],
            num_key_value_heads=r["num_key_value_heads"],
            max_position_embeddings=r["max_position_embeddings"],
            tie_word_embeddings=True,
            bos_token_id=pad_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        model = Qwen2ForCausalLM(config)
        texts = [tokenizer.apply_chat_template(c, tokenize=False)
                 for c in corpus_conversations(r["conversations"], r["seed"])]
        encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        gen = torch.Generator().manual_seed(r["seed"])
        opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=r["steps"],
                                                    pct_start=0.1)
        model.train()
        bar = tqdm(range(r["steps"]), desc="pretraining tiny model", disable=not progress,
                   mininterval=1.0)
        for _ in bar:
            idx = torch.randint(len(encoded), (r["batch_size"],), generator=gen).tolist()
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            labels = ids.masked_fill(mask == 0, -100)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id, eos_token_id=[eos_id, pad_id], pad_token_id=pad_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
