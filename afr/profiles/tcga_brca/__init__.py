"""Fed-TCGA-BRCA (FLamby): breast-cancer survival from 39 clinical covariates, 6 regions as centers.

Centers and the train/test split come from FLamby's published ``train_test_split.csv``
(``fold2`` = ``train_k`` / ``test_k``). Model: Cox proportional hazards, Linear(39 -> 1);
loss: Cox partial likelihood on the batch; metric: C-index, lifelines ``concordance_index(T, -s, E)``.
"""

from .profile import TcgaBrca

__all__ = ["TcgaBrca"]
