"""course-grade similarity: near-copies rank above honest independent answers; template ignored."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

from course_lib.grading import similarity

EXERCISES = Path(__file__).resolve().parents[1] / "exercises"
RELEASE = json.loads((EXERCISES / "ex01_losses_init" / "ex01_losses_init.ipynb").read_text())
SIG = {
    "softmax": 'def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:\n    """Softmax."""\n',
    "log_softmax": "def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:\n",
    "cross_entropy": (
        "def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, "
        'reduction: str = "mean") -> torch.Tensor:\n'
    ),
}

ORIGINAL = {  # the answer that gets copied
    "softmax": """def _stable_shift(values, axis):
    biggest = values.amax(dim=axis, keepdim=True)
    return values - biggest


def _normalise(weights, axis):
    total = weights.sum(dim=axis, keepdim=True)
    return weights / total


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    shifted = _stable_shift(x, dim)
    weights = torch.exp(shifted)
    return _normalise(weights, dim)
""",
    "log_softmax": """def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    shifted = _stable_shift(x, dim)
    log_total = torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))
    return shifted - log_total
""",
    "cross_entropy": SIG["cross_entropy"]
    + """    logp = log_softmax(logits, dim=1)
    picked = logp.gather(1, targets.view(-1, 1)).squeeze(1)
    losses = -picked
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.mean()
""",
}

COPY = {  # renamed variables, functions reordered, comments added
    "softmax": """def _normalise(w, d):
    # divide by the total so the row sums to one
    s = w.sum(dim=d, keepdim=True)
    return w / s


def _stable_shift(t, d):
    # subtract the max for numerical stability
    m = t.amax(dim=d, keepdim=True)
    return t - m


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # my own softmax implementation
    z = _stable_shift(x, dim)
    e = torch.exp(z)  # exponentiate
    return _normalise(e, dim)
""",
    "log_softmax": """def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # log-sum-exp trick
    z = _stable_shift(x, dim)
    lse = torch.log(torch.exp(z).sum(dim=dim, keepdim=True))
    return z - lse
""",
    "cross_entropy": SIG["cross_entropy"]
    + """    # cross entropy = negative log likelihood
    lp = log_softmax(logits, dim=1)
    chosen = lp.gather(1, targets.view(-1, 1)).squeeze(1)
    per_sample = -chosen
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.mean()
""",
}

HONEST = [
    {
        "softmax": SIG["softmax"]
        + "    m = x.max(dim=dim, keepdim=True).values\n    e = (x - m).exp()\n"
        "    return e / e.sum(dim, keepdim=True)\n",
        "log_softmax": SIG["log_softmax"]
        + "    return x - torch.logsumexp(x, dim=dim, keepdim=True)\n",
        "cross_entropy": SIG["cross_entropy"]
        + "    n = logits.shape[0]\n    lp = log_softmax(logits)\n"
        "    loss = -lp[torch.arange(n), targets]\n"
        "    return {'none': loss, 'sum': loss.sum(), 'mean': loss.mean()}[reduction]\n",
    },
    {
        "softmax": SIG["softmax"]
        + "    out = torch.empty_like(x)\n    shifted = x - torch.max(x, dim, True)[0]\n"
        "    num = torch.exp(shifted)\n    den = torch.sum(num, dim, True)\n"
        "    out = num / den\n    return out\n",
        "log_softmax": SIG["log_softmax"] + "    mx = torch.max(x, dim, True)[0]\n"
        "    return x - mx - torch.log(torch.sum(torch.exp(x - mx), dim, True))\n",
        "cross_entropy": SIG["cross_entropy"]
        + "    onehot = torch.zeros_like(logits)\n    onehot[range(len(targets)), targets] = 1.0\n"
        "    per = -(onehot * log_softmax(logits, 1)).sum(1)\n    if reduction == 'mean':\n"
        "        per = per.mean()\n    elif reduction == 'sum':\n        per = per.sum()\n"
        "    return per\n",
    },
    {
        "softmax": SIG["softmax"] + "    return torch.exp(log_softmax(x, dim))\n",
        "log_softmax": SIG["log_softmax"]
        + "    c = x.detach().max(dim=dim, keepdim=True).values\n    y = x - c\n"
        "    return y - y.exp().sum(dim=dim, keepdim=True).log()\n",
        "cross_entropy": SIG["cross_entropy"]
        + "    result = []\n    for row, t in zip(log_softmax(logits, -1), targets):\n"
        "        result.append(-row[t])\n    result = torch.stack(result)\n"
        "    if reduction == 'sum':\n        return result.sum()\n"
        "    return result if reduction == 'none' else result.mean()\n",
    },
    {
        "softmax": SIG["softmax"]
        + "    x = x.movedim(dim, -1)\n    p = (x - x.amax(-1, keepdim=True)).exp()\n"
        "    p = p / p.sum(-1, keepdim=True)\n    return p.movedim(-1, dim)\n",
        "log_softmax": SIG["log_softmax"] + "    return torch.log(softmax(x, dim))\n",
        "cross_entropy": SIG["cross_entropy"]
        + "    probs = softmax(logits, dim=1)\n    p_true = probs.gather(1, targets[:, None])[:, 0]\n"
        "    nll = -torch.log(p_true)\n    if reduction == 'none':\n        return nll\n"
        "    return nll.sum() if reduction == 'sum' else nll.mean()\n",
    },
]


def _notebook(answers: dict[str, str]) -> dict:
    nb = copy.deepcopy(RELEASE)
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell["source"] = answers[gid]
    return nb


def _class(folder: Path) -> Path:
    folder.mkdir()
    students = {"ana": ORIGINAL, "zed": COPY, "untouched": {}}
    students |= {name: a for name, a in zip(["ben", "cho", "dee", "eli"], HONEST)}
    for sid, answers in students.items():
        (folder / f"{sid}.ipynb").write_text(json.dumps(_notebook(answers)))
    (folder / "broken.ipynb").write_text("{not json")
    return folder


def test_near_copies_rank_first(tmp_path):
    subs = _class(tmp_path / "subs")
    out = tmp_path / "sim"
    pairs = similarity.similarity("ex01_losses_init", subs, out, EXERCISES, top=5, jobs=1)
    assert {pairs[0].a, pairs[0].b} == {"ana", "zed"}
    assert pairs[0].score > 0.6
    rest = max((p.score for p in pairs[1:]), default=0.0)
    assert rest < pairs[0].score / 2, [(p.a, p.b, round(p.score, 2)) for p in pairs[:4]]
    # the untouched release and the broken file are not compared; nobody matches the template
    names = {p.a for p in pairs} | {p.b for p in pairs}
    assert "untouched" not in names and "broken" not in names
    with open(out / "similarity.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert (rows[0]["rank"], {rows[0]["student_a"], rows[0]["student_b"]}) == ("1", {"ana", "zed"})
    assert len(rows) == len(pairs)
    page = (out / "similarity.html").read_text()
    assert "<mark class='a'>" in page and "<mark class='b'>" in page
    assert "_stable_shift" in page and "untouched (nothing beyond the template)" in page


def test_similarity_command(tmp_path, capsys):
    from course_lib.grading.cli import main

    subs = tmp_path / "subs"
    subs.mkdir()
    for sid, answers in {"ana": ORIGINAL, "zed": COPY, "ben": HONEST[0]}.items():
        (subs / f"{sid}.ipynb").write_text(json.dumps(_notebook(answers)))
    args = ["similarity", "ex01_losses_init", str(subs), "--out", str(tmp_path / "o")]
    assert main(args + ["--exercises", str(EXERCISES), "--jobs", "1", "--top", "1"]) == 0
    assert "ana  zed" in capsys.readouterr().out
    assert (tmp_path / "o" / "similarity.html").read_text().count("<h2 id=") == 1


def test_template_alone_shares_nothing(tmp_path):
    """Two students who only filled the signature-and-docstring template share no fingerprint."""
    answers, others, boiler = similarity.answer_cells(RELEASE)
    assert {"softmax", "cross_entropy"} <= answers and "setup" in others
    boiler_hashes = similarity.boilerplate_hashes(boiler)
    release_sources = {similarity._source(c).strip() for c in RELEASE["cells"]}
    code = similarity.student_code(_notebook({}), answers, others, release_sources)
    assert "raise NotImplementedError" in code
    assert not similarity.fingerprint(code, boiler_hashes).hashes


def test_parallel_and_serial_agree(tmp_path):
    rng_code = [
        f"def f{i}(a, b):\n    c = a * {i} + b\n    for k in range({i % 7 + 2}):\n"
        f"        c = c - k * a\n    return c ** {i % 3 + 1}\n" * (1 + i % 3)
        for i in range(60)
    ]
    fps = {f"s{i:02d}": similarity.fingerprint(c) for i, c in enumerate(rng_code)}
    one = similarity.compare_all(fps, jobs=1)
    two = similarity.compare_all(fps, jobs=2)
    assert [(p.a, p.b, p.shared) for p in one] == [(p.a, p.b, p.shared) for p in two]
