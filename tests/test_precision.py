import torch
from torch import nn

from course_lib.precision import saved_activation_bytes, step_time


def test_saved_bytes_of_a_linear_layer_are_its_input_and_halve_in_bf16():
    torch.manual_seed(0)
    lin = nn.Linear(16, 8, bias=False)
    x = torch.randn(32, 16)
    # fp32: autograd keeps the input (the weight is a parameter, not counted)
    assert saved_activation_bytes(lin, x, None) == 32 * 16 * 4
    # bf16 autocast: the bf16 copy of the input is saved (x needs no gradient, so the weight's
    # copy is not): 2 bytes per element, half of fp32
    assert saved_activation_bytes(lin, x, torch.bfloat16) == 32 * 16 * 2


def test_saved_bytes_grow_with_the_batch_and_relu_keeps_its_output():
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU())
    small = saved_activation_bytes(model, torch.randn(4, 10), None)
    large = saved_activation_bytes(model, torch.randn(8, 10), None)
    assert small == 4 * 10 * 4 + 4 * 20 * 4 and large == 2 * small


def test_step_time_trains_and_is_positive():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    before = model.weight.detach().clone()
    t = step_time(
        model, torch.randn(16, 5), torch.randint(0, 3, (16,)), torch.bfloat16, steps=2, warmup=1
    )
    assert t > 0 and not torch.equal(before, model.weight)
