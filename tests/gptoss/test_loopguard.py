"""The loop guard: detects the seed's repeating analysis, leaves ordinary text alone, saves tokens."""

import random

import pytest

from wikitune.gptoss.loopguard import CycleDetector, LoopGuard, find_cycle


def words(text):  # a word-level "tokenizer" for real-shaped text
    vocab = {}
    return [vocab.setdefault(w, len(vocab)) for w in text.split()]


CYCLE = ("Actually, Rebecca Miyamoto is a teacher at a school, but the class is 3rd year of junior high? "
         "Wait, let's recall: In the anime, Rebecca Miyamoto is a teacher at a school, but the class is 3rd year of junior high? ")
SEED_LOOP = "The user asks about Paniponi Dash. " + CYCLE * 20


def test_detects_the_seed_loop_early():
    tokens = words(SEED_LOOP)
    found = find_cycle(tokens, min_span=48)
    assert found is not None
    position, period = found
    assert period == len(CYCLE.split())  # the repeated sentence pair, in words
    assert position < len(tokens) / 3  # stopped after about three cycles, not at the budget


def test_ordinary_text_is_not_a_loop():
    rng = random.Random(0)
    assert find_cycle([rng.randrange(5000) for _ in range(2000)]) is None
    assert find_cycle(words("ーーーー 。。。 " * 3 + "です")) is None  # short repetition under min_span
    assert find_cycle([7] * 47, min_span=48) is None and find_cycle([7] * 48, min_span=48) == (48, 1)


def test_detector_validation_and_batches():
    with pytest.raises(ValueError):
        CycleDetector(min_period=0)
    with pytest.raises(ValueError):
        CycleDetector(min_repeats=1)
    # streams of one batch are independent; min_period skips short cycles
    detector = CycleDetector(2, min_period=2, min_span=6, min_repeats=3)
    found = [detector.push([10 + i, t]) for i, t in enumerate([1, 2, 1, 2, 1, 2])]
    assert found[-1] == [None, 2] and all(f[0] is None for f in found) and found[-2] == [None, None]
    assert find_cycle([5] * 10, min_period=2, min_span=6) == (6, 2)  # a constant stream is 2-periodic too


def scripted_generate(scripts, guard, max_new_tokens, prompt):
    """A generator that emits scripted tokens step by step and asks the guard after each step,
    like transformers' generate loop (stopped sequences get padding)."""
    sequences = [list(prompt) for _ in scripts]
    alive = [True] * len(scripts)
    for step in range(max_new_tokens):
        for b, script in enumerate(scripts):
            sequences[b].append(script[step] if alive[b] and step < len(script) else 0)
        done = guard.update(sequences)
        alive = [a and not d for a, d in zip(alive, done)]
        alive = [a and step + 1 < len(s) for a, s in zip(alive, scripts)]
        if not any(alive):
            break
    return sequences


def test_guard_stops_only_the_looping_sequence_and_counts_saved_tokens():
    rng = random.Random(1)
    prompt = [1, 2, 3]
    looping = [rng.randrange(100, 5000) for _ in range(20)] + [10, 11, 12, 13, 14, 15, 16, 17] * 100
    normal = [rng.randrange(100, 5000) for _ in range(300)]
    finished = [rng.randrange(100, 5000) for _ in range(10)] + [99]  # 99 = stop token, then padding
    guard = LoopGuard(prompt_length=len(prompt), batch_size=3, stop_token_ids=[99], min_span=48)
    scripted_generate([looping, normal, finished], guard, max_new_tokens=512, prompt=prompt)
    assert guard.stopped_at[0] is not None and guard.periods[0] == 8
    assert guard.stopped_at[0] <= 20 + 48 + 8
    assert guard.stopped_at[1] is None and guard.stopped_at[2] is None  # padding after a stop token is no loop
    saved = 512 - guard.stopped_at[0]
    assert saved > 400


def test_guard_as_a_transformers_stopping_criterion():
    torch = pytest.importorskip("torch")
    guard = LoopGuard(prompt_length=2, batch_size=2, min_span=12, min_repeats=3)
    criterion = guard.criterion()
    ids = torch.tensor([[5, 5] + [1, 2, 3, 4] * 3, [5, 5] + list(range(20, 32))])
    assert criterion(ids, None).tolist() == [True, False]


def test_streams_leave_and_join_a_detector_each_with_its_own_history():
    """As in continuous batching: a finished stream is dropped, a new one joins later; each stream's
    cycle is found where find_cycle finds it in that stream alone."""
    rng = random.Random(2)
    kw = dict(min_span=12, max_period=24, min_repeats=3)
    old = [rng.randrange(100, 200) for _ in range(30)]  # ends before its cycle could show
    late = [rng.randrange(100, 200) for _ in range(10)] + [7, 8, 9] * 20
    joiner = [rng.randrange(100, 200) for _ in range(5)] + [1, 2, 3, 4, 5] * 20
    detector = CycleDetector(2, **kw)
    found = {}
    for t in range(10):
        assert detector.push([old[t], late[t]]) == [None, None]
    detector.select([1])  # `old` finished
    newcomer = CycleDetector(1, **kw)
    newcomer.push([joiner[0]])
    detector.concat(newcomer)
    streams = {0: (late, 10), 1: (joiner, 1)}
    for step in range(50):
        column = [tokens[start + step] for tokens, start in streams.values()]
        for n, period in enumerate(detector.push(column)):
            tokens, start = streams[n]
            if period is not None and n not in found:
                found[n] = (start + step + 1, period)
    assert found[0] == find_cycle(late, **kw) and found[1] == find_cycle(joiner, **kw)
