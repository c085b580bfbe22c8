import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from course_lib.tta import crop_views, random_crops, tta_predict


def _x():
    return torch.rand(3, 2, 8, 10, generator=torch.Generator().manual_seed(0))


def test_ten_crop_views_equal_torchvision_and_manual_slices():
    x = _x()
    views = crop_views(x, 6, "ten")
    ref = v2.TenCrop(6)(x)
    assert len(views) == 10
    for a, b in zip(views, ref):
        torch.testing.assert_close(a, b)
    # manual oracle: corners and centre, then the same five crops of the mirrored image
    corners = [x[..., :6, :6], x[..., :6, -6:], x[..., -6:, :6], x[..., -6:, -6:], x[..., 1:7, 2:8]]
    for a, b in zip(views[:5], corners):
        torch.testing.assert_close(a, b)
    m = x.flip(-1)
    mirrored = [
        m[..., :6, :6],
        m[..., :6, -6:],
        m[..., -6:, :6],
        m[..., -6:, -6:],
        m[..., 1:7, 2:8],
    ]
    for a, b in zip(views[5:], mirrored):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(crop_views(x, 6, "center")[0], x[..., 1:7, 2:8])


def test_shift5_views_are_the_centre_crop_moved_by_one_pixel():
    x = _x()
    views = crop_views(x, 6, "shift5")
    expected = [
        x[..., 1:7, 2:8],
        x[..., 0:6, 2:8],
        x[..., 2:8, 2:8],
        x[..., 1:7, 1:7],
        x[..., 1:7, 3:9],
    ]
    for a, b in zip(views, expected):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        crop_views(x, 6, "corners")


def test_random_crops_are_windows_of_each_image():
    x = torch.arange(4 * 1 * 7 * 7).float().view(4, 1, 7, 7)
    out = random_crops(x, 5, torch.Generator().manual_seed(1))
    assert out.shape == (4, 1, 5, 5)
    for i in range(4):
        top, left = divmod(int(out[i, 0, 0, 0] - x[i, 0, 0, 0]), 7)
        torch.testing.assert_close(out[i], x[i, :, top : top + 5, left : left + 5])


def test_tta_predict_averages_the_softmax_over_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 4))
    x = _x()
    got = tta_predict(model, x, 6, "ten", batch_size=2)
    ref = torch.stack([model(v).softmax(1) for v in v2.TenCrop(6)(x)]).mean(0)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(got.sum(1), torch.ones(3))
