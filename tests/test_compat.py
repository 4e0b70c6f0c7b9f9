from threshsearch.compat import torchvision


def test_datasets_transforms_and_models_import():
    from torchvision.transforms import v2

    assert callable(torchvision.datasets.CIFAR10)
    assert callable(v2.RandomCrop)
    assert "densenet121" in torchvision.models.list_models(module=torchvision.models)
