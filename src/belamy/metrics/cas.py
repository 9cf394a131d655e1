"""Classification Accuracy Score (Ravuri and Vinyals 2019, "Classification Accuracy Score for Conditional Generative
Models"): train a classifier only on a conditional model's samples, test it on real held-out data. A model whose
classes look right but lack the variety of the real ones scores low, which FID and Inception Score can miss. Reported
beside the same classifier trained on as many real training images (the score's ceiling)."""

from __future__ import annotations

from typing import Any

import torch

from belamy.data import open_data, split_spec
from belamy.data.base import ImageSet
from belamy.metrics.classifier import ClassifierConfig, classifier_accuracy, fit_classifier
from belamy.pipelines.generator import GeneratorPipeline
from belamy.pipelines.synthetic import class_names, synthesize


def _real(spec: str, model: GeneratorPipeline) -> ImageSet:
    data = open_data(spec, resolution=model.data.shape[1], channels=model.data.shape[0])
    if not isinstance(data, ImageSet) or data.info.num_classes != model.data.num_classes:
        raise ValueError(f"{spec} has {getattr(data.info, 'num_classes', 0)} classes, the model "
                         f"{model.data.num_classes}: CAS tests on real images of the model's classes")
    if data.info.class_names and list(data.info.class_names) != class_names(model):
        raise ValueError(f"{spec}'s classes {list(data.info.class_names)} are not the model's {class_names(model)}")
    return data


def _overlaps(trained_on: str | None, real: str) -> bool:
    """Whether data `trained_on` holds the images of `real` (the same set: whole, or the same split)."""
    if trained_on is None:
        return False
    (name, split), (real_name, real_split) = split_spec(trained_on), split_spec(real)
    return name == real_name and (split is None or real_split is None or split == real_split)


def classification_accuracy_score(model: GeneratorPipeline, real: str | None = None, n_per_class: int = 500,
                                  seed: int = 0, prompts: dict[str, str] | None = None,
                                  reference: bool = True, trained_on: str | None = None) -> dict[str, Any]:
    """CAS of a class- or text-conditional model on `real` (default: the test split of its training data).

    figures: cas (accuracy on real test images of a classifier trained on n_per_class samples per class),
    real_accuracy (the same classifier trained on as many real training images, when reference and the training
    split exists), n_synthetic, n_real_test, real, chance, and test_seen_in_training: True when `trained_on` (the
    run's data spec) holds the real test images (the whole set, or the same split), so the score is not clean."""
    name = trained_on or model.data.name
    real = real or f"{split_spec(name)[0]}:test"
    test = _real(real, model)
    images, labels, _ = synthesize(model, n_per_class, seed, prompts)
    config = ClassifierConfig()
    epochs = config.epochs(len(images) + len(images) // 4)  # the same number of steps as a classifier of this size
    net = fit_classifier(images.float(), labels, model.data.num_classes, epochs, config.batch_size, seed)
    x_test = test.images.float() / 127.5 - 1
    result: dict[str, Any] = {"cas": classifier_accuracy(net, x_test, test.labels), "n_synthetic": len(images),
                              "n_real_test": len(test), "real": real, "chance": 1 / model.data.num_classes,
                              "test_seen_in_training": _overlaps(trained_on, real)}
    train_spec = f"{split_spec(real)[0]}:train"
    if reference and split_spec(real)[1] == "test":
        train = _real(train_spec, model)
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: len(images)]
        real_net = fit_classifier(train.images[pick].float() / 127.5 - 1, train.labels[pick], model.data.num_classes,
                                  epochs, config.batch_size, seed)
        result["real_accuracy"] = classifier_accuracy(real_net, x_test, test.labels)
        result["n_real_train"] = len(pick)
    return result
