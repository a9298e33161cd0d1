"""Fed-Heart-Disease (FLamby): 4 hospitals of the UCI Heart Disease data, binary diagnosis.

Preprocessing follows FLamby: drop slope/ca/thal, drop rows with a missing value, label = num > 0,
one-hot cp and restecg (first level dropped) -> 13 features, 66 % / 34 % stratified split per center
(random_state 43), z-score per center with that center's train mean and unbiased std (+1e-9).
"""

from .profile import HeartDisease

__all__ = ["HeartDisease"]
