"""Round-trip variants for ex07_optimisers (see course_lib/grading/README.md, "Variants")."""

_SGD_HEAD = """
class SGD:
    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None
"""

# Nesterov flag ignored: always the heavy-ball direction d = b
SGD_NESTEROV_IGNORED = (
    _SGD_HEAD
    + """
    @torch.no_grad()
    def step(self):
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            if self.momentum != 0:
                if "buffer" not in state:
                    state["buffer"] = g.clone()
                else:
                    state["buffer"].mul_(self.momentum).add_(g)
                g = state["buffer"]
            p.sub_(self.lr * g)
"""
)

SGD_CALLS_TORCH = (
    _SGD_HEAD
    + """
    @torch.no_grad()
    def step(self):
        if "opt" not in self.state[0]:
            self.state[0]["opt"] = torch.optim.SGD(self.params, lr=self.lr, momentum=self.momentum,
                                                   nesterov=self.nesterov, weight_decay=self.weight_decay)
        self.state[0]["opt"].step()
"""
)

_ADAM_HEAD = """
class Adam:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None
"""

# eps inside the square root: right for ordinary gradients, wrong for tiny ones
ADAM_EPS_INSIDE_SQRT = (
    _ADAM_HEAD
    + """
    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p
            if not state:
                state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
            state["t"] += 1
            state["m"].mul_(beta1).add_((1 - beta1) * g)
            state["v"].mul_(beta2).add_((1 - beta2) * g * g)
            m_hat = state["m"] / (1 - beta1 ** state["t"])
            v_hat = state["v"] / (1 - beta2 ** state["t"])
            p.sub_(self.lr * m_hat / torch.sqrt(v_hat + self.eps))
"""
)

# a reference to torch's Adam captured in a class attribute before the tests run
ADAM_CALLS_TORCH = """
class Adam:
    _impl = torch.optim.Adam

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.state = [{} for _ in self.params]
        self._opt = None

    @torch.no_grad()
    def step(self):
        if self._opt is None:
            self._opt = self._impl(self.params, lr=self.lr, betas=self.betas, eps=self.eps,
                                   weight_decay=self.weight_decay)
        self._opt.param_groups[0]["weight_decay"] = self.weight_decay
        self._opt.step()
"""

# weight decay added to the gradient (Adam + L2) instead of decoupled
ADAMW_COUPLED = """
class AdamW(Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self):
        super().step()
"""

# warmup starts at base_lr / warmup_steps instead of 0
LR_WARMUP_OFF_BY_ONE = """
def warmup_cosine_lr(step, total_steps, warmup_steps, base_lr, min_lr=0.0):
    if not 0 <= warmup_steps < total_steps or step < 0:
        raise ValueError("bad arguments")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
"""

LR_CALLS_COURSE_LIB = """
from course_lib.optim import warmup_cosine

def warmup_cosine_lr(step, total_steps, warmup_steps, base_lr, min_lr=0.0):
    if not 0 <= warmup_steps < total_steps or step < 0:
        raise ValueError("bad arguments")
    return warmup_cosine(step, total_steps, warmup_steps, base_lr, min_lr)
"""

SGD_CELLS = ("test_sgd_visible", "test_sgd_momentum", "test_sgd_nesterov", "test_sgd_weight_decay")
ADAM_CELLS = ("test_adam_visible", "test_adam_hidden", "test_adam_weight_decay", "test_adam_edge")
ADAMW_CELLS = ("test_adamw_visible", "test_adamw_hidden")
LR_CELLS = (
    "test_warmup_cosine_lr_visible",
    "test_warmup_cosine_lr_hidden",
    "test_warmup_cosine_lr_edge",
)

VARIANTS = {
    "sgd_nesterov_ignored": {
        "answers": {"SGD": SGD_NESTEROV_IGNORED},
        "expect": {"test_sgd_nesterov": 0},
    },
    "adam_eps_inside_sqrt": {
        "answers": {"Adam": ADAM_EPS_INSIDE_SQRT},
        "expect": {"test_adam_edge": 0},
    },
    "adamw_coupled_weight_decay": {
        "answers": {"AdamW": ADAMW_COUPLED},
        "expect": {"test_adamw_visible": 0, "test_adamw_hidden": 0},
    },
    "lr_warmup_off_by_one": {
        "answers": {"warmup_cosine_lr": LR_WARMUP_OFF_BY_ONE},
        "expect": {"test_warmup_cosine_lr_visible": 0, "test_warmup_cosine_lr_hidden": 0},
    },
    "sgd_calls_reference": {
        "answers": {"SGD": SGD_CALLS_TORCH},
        "expect": dict.fromkeys(SGD_CELLS, 0),
    },
    # AdamW (reference) calls Adam.step, so it loses its points too
    "adam_captures_reference": {
        "answers": {"Adam": ADAM_CALLS_TORCH},
        "expect": dict.fromkeys(ADAM_CELLS + ADAMW_CELLS, 0),
    },
    "lr_calls_course_lib": {
        "answers": {"warmup_cosine_lr": LR_CALLS_COURSE_LIB},
        "expect": dict.fromkeys(LR_CELLS, 0),
    },
}
