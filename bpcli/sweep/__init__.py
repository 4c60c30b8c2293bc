"""Hyperparameter sweeps: the trials a search space makes (``plan``), the scheduler that
stops trailing trials (``asha``), a trial trained through the ordinary session
(``trial``), the executors that run trials (``local``), and the sweep directory with its
results (``record``); ``run`` drives them."""
