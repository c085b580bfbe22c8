import pytest
import torch

from course_lib.data import paste_on_canvas


def _paste_loop(x, columns, canvas, seed):
    # The obvious per-example loop, with the same draws (columns first, then rows).
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, canvas, canvas)
    dx = torch.tensor(list(columns))[torch.randint(len(columns), (n,), generator=g)]
    dy = torch.randint(canvas - h + 1, (n,), generator=g)
    for i in range(n):
        out[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] = x[i]
    return out


@pytest.mark.parametrize(
    "shape,columns,canvas", [((50, 1, 28, 28), range(0, 5), 40), ((20, 3, 5, 7), [0, 13], 20)]
)
def test_matches_a_per_example_loop(shape, columns, canvas):
    x = torch.rand(shape) + 0.1  # no zero pixels: every pasted pixel is visible
    out = paste_on_canvas(x, columns, canvas=canvas, seed=3)
    assert out.shape == (shape[0], shape[1], canvas, canvas)
    assert torch.equal(out, _paste_loop(x, columns, canvas, seed=3))
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing lost, nothing duplicated


def test_left_edges_come_from_the_given_columns_and_seed_fixes_the_draw():
    x = torch.ones(200, 1, 28, 28)
    out = paste_on_canvas(x, range(8, 13), seed=1)
    left = (out[:, 0].amax(1) > 0).float().argmax(1)  # first non-empty column
    assert set(left.tolist()) == set(range(8, 13))
    assert torch.equal(out, paste_on_canvas(x, range(8, 13), seed=1))
    assert not torch.equal(out, paste_on_canvas(x, range(8, 13), seed=2))


def test_rejects_columns_that_do_not_fit():
    with pytest.raises(ValueError):
        paste_on_canvas(torch.ones(2, 1, 28, 28), [13], canvas=40)
