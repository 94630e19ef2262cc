"""The ``ensemble`` command: thin click wrappers over the library functions.

Exit codes: 0 on success, 1 on a user error (one line on stderr, no traceback unless ``-v``),
2 on a usage error (click's own), 130 when interrupted.
"""

from __future__ import annotations

import functools
import logging
import sys

import click

from ensemble.core.errors import EnsembleError
from ensemble.core.options import allowed
from ensemble.tasks import DEFAULT_TASK, TASK_CHOICES

log = logging.getLogger("ensemble")


from ensemble.cli.main import common_options, main
from ensemble.cli.options import (
    InputFlags,
    KType,
    adjust_options,
    column_options,
    data_options,
    fold_options,
    folds_value,
    inference_options,
    value_flags,
    value_options,
)


@main.command("avg-ckpt")
@click.argument("run_or_checkpoints", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--k", "k", type=KType(), default=None, metavar="K|auto|K1,K2,...",
              help="Average the best K checkpoints [default: 4 for a run folder; every folder listed]; "
                   "'auto' or a list: the K scoring best on --holdout.")
@click.option("--method", type=click.Choice(allowed("soup")), default="uniform", show_default=True,
              help="greedy: greedy soup, a checkpoint joins when --holdout accuracy does not drop.")
@click.option("--holdout", type=click.Path(path_type=str), default=None,
              help="Labelled data file to score greedy soups and --k auto on.")
@column_options
@click.option("--metric", default=None,
              help="eval metric to rank by (eval_ prefix optional) [default: eval_accuracy, "
                   "else the run's metric_for_best_model, else eval_loss].")
@click.option("--greater-is-better/--lower-is-better", "greater_is_better", default=None,
              help="Metric direction [default: the run's own for its metric_for_best_model, else the name's: "
                   "loss, mse, rmse, mae, wer ... lower; accuracy, f1, pearson, rouge ... higher; else an error].")
@click.option("--out", type=click.Path(path_type=str), default=None,
              help="Output model folder [default: weights/<run-name>-top<K>].")
@click.option("--tokenizer", type=click.Path(path_type=str), default=None,
              help="Folder to take the tokenizer from when the checkpoints and run folder have none.")
@click.option("--accumulate-dtype", type=click.Choice(allowed("accumulate_dtype")), default="float32",
              show_default=True, help="Precision of the running sum.")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--across-trials", is_flag=True,
              help="RUN is a hyper-parameter sweep (run-<n>/checkpoint-N): rank the checkpoints of all trials together.")
@click.option("--exclude-trial", "exclude_trials", multiple=True, metavar="TRIAL",
              help="With --across-trials: leave this trial folder out, repeatable.")
@click.option("--trust-remote-code", is_flag=True,
              help="Copy the model code that auto_map names into the average (and run it to score --holdout).")
@common_options
def avg_ckpt(run_or_checkpoints, k, method, holdout, id_col, text_cols, label_col, encoding, quoting, metric,
             greater_is_better, out, tokenizer, accumulate_dtype, force, across_trials, exclude_trials,
             trust_remote_code):
    """Average the top-K checkpoints of a Trainer run into one model folder.

    RUN_OR_CHECKPOINTS is a Trainer output folder holding checkpoint-N folders, or checkpoint
    folders themselves. The result loads with the Auto class of its head (from_pretrained): it holds
    the config, generation config, tokenizer and processor files, and the model's own code files
    with --trust-remote-code.

    \b
    Examples:
      ensemble avg-ckpt runs/bert --k 4
      ensemble avg-ckpt runs/bert --metric eval_f1 --out weights/bert-swa
      ensemble avg-ckpt runs/bert/checkpoint-800 runs/bert/checkpoint-1000
      ensemble avg-ckpt runs/bert --method greedy --holdout data/valid.csv
      ensemble avg-ckpt runs/bert --k auto --holdout data/valid.csv
      ensemble avg-ckpt sweeps/bert --across-trials --k 4
    """
    from ensemble.averaging.build import average_checkpoints
    from ensemble.data.splits import load_split

    if holdout is not None:
        holdout = load_split(holdout, id=id_col, text=list(text_cols) or None, label=label_col,
                             encoding=encoding, require_label=True, quoting=quoting or "auto")

    target = run_or_checkpoints[0] if len(run_or_checkpoints) == 1 else list(run_or_checkpoints)
    path = average_checkpoints(
        target, k=k, metric=metric, out=out, method=method, holdout=holdout, greater_is_better=greater_is_better,
        tokenizer=tokenizer, accumulate_dtype=accumulate_dtype, force=force,
        progress=click.get_current_context().meta["ensemble.progress"], across_trials=across_trials,
        exclude_trials=exclude_trials, trust_remote_code=trust_remote_code,
    )
    click.echo(str(path))


@main.command("predict")
@click.option("--model", "models", multiple=True, metavar="NAME=PATH",
              help="A model folder, repeatable: --model bert=weights/bert-top4.")
@data_options
@inference_options
@click.option("--cache-dir", type=click.Path(path_type=str), default=None,
              help="Logit cache folder [default: .ensemble/cache beside ensemble.toml, else here].")
@click.option("--no-cache", is_flag=True, help="Compute everything; read and write no cache.")
@click.option("--trust-remote-code", is_flag=True,
              help="Let transformers run Python code shipped in a model folder (off by default).")
@functools.partial(fold_options, refit=False)
@common_options
def predict(models, data, project, id_col, text_cols, label_col, encoding, quoting, batch_size, max_length,
            pad_to_multiple_of, device, dtype, cache_dir, no_cache, trust_remote_code, folds, fold_column):
    """Run every model over every split and cache the logits, skipping what is cached.

    The cache key is the content of the weights, config, tokenizer and data (ids and texts) and
    every setting that changes the numbers, so a stale entry is never used. Under
    `accelerate launch` each process takes a share of the batches.

    A fold group (a path with {fold}, and --folds with --data train=...): fold model k predicts
    the rows of fold k of the training split and every other split whole.

    \b
    Examples:
      ensemble predict --model bert=weights/bert-top4 --data valid=data/valid.csv --data test=data/test.csv
      accelerate launch --multi_gpu --num_processes 4 -m ensemble predict --model ... --data ...
      ensemble predict --model bert=runs/bert-fold{fold} --data train=data/train.csv --data test=data/test.csv \\
                       --folds data/folds.csv
    """
    from ensemble.inference.cache import OutputCache
    from ensemble.workflows.predict import predict_jobs

    inputs = InputFlags(project, models, data, id_col, text_cols, label_col, encoding, cache_dir, quoting)
    inputs.need()
    settings = inputs.inference(batch_size, max_length, pad_to_multiple_of, device, dtype, trust_remote_code)
    jobs = inputs.jobs(folds, fold_column)
    cache = None if no_cache else OutputCache(inputs.cache_dir)
    rows = [(r.model, r.split, r.rows, r.how, r.accuracy, r.cache_path)
            for r in predict_jobs(jobs, settings, cache, progress=click.get_current_context().meta["ensemble.progress"])]
    width = max(len("model"), *(len(r[0]) for r in rows))
    swidth = max(len("split"), *(len(r[1]) for r in rows))
    log.info("%s", f"{'model':<{width}}  {'split':<{swidth}}  {'rows':>7}  {'logits':<8}  {'accuracy':>8}  cache entry")
    for name, split_name, n, how, acc, path in rows:
        acc_s = f"{acc:.4f}" if acc is not None else "-"
        log.info("%s", f"{name:<{width}}  {split_name:<{swidth}}  {n:>7}  {how:<8}  {acc_s:>8}  {path}")
    computed = sum(r[3] == "computed" for r in rows)
    log.info("%d computed, %d from the cache%s", computed, len(rows) - computed,
             f" ({cache.root})" if cache is not None else "")


@main.command("vote")
@click.option("--model", "models", multiple=True, metavar="NAME=PATH",
              help="A model folder whose logits are cached, repeatable.")
@data_options
@click.option("--weights", "weights", default=None,
              metavar="uniform|acc|optimize|select|stack|best|best<K>|auto|FILE|w1,w2,...",
              help="[default: auto, or [vote] weights of ensemble.toml] A method fitted on the valid split "
                   "(best: the best member alone; best3: the mean of the 3 best); auto: the method whose "
                   "cross-validated gain over uniform is sure (else uniform); a weights .json written before; or one "
                   "weight per --model.")
@click.option("--combine", type=click.Choice(allowed("combine")), default=None,
              help="Mean of probabilities, of logits, of log-probabilities, hard vote, or rank average (for "
                   "--metric roc_auc) [default: prob].")
@click.option("--models", "subset", default=None, metavar="A,B,...", help="Use only these of the --model names.")
@click.option("--temperature", is_flag=True, help="Fit a temperature per model on validation log loss first.")
@click.option("--calibrate", is_flag=True, help="Fit a temperature on the combined probabilities last.")
@click.option("--acc-power", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="--weights acc: weights proportional to each member's --metric (accuracy) to this power.")
@click.option("--sample-submission", type=click.Path(path_type=str), default=None,
              help="The competition's sample submission: its columns, row order and label format are followed.")
@click.option("--out", type=click.Path(path_type=str), default=None,
              help="Submission CSV [default: submissions/<name>-<method>.csv].")
@click.option("--proba", is_flag=True, help="Add a probability column per class (entities: the per-character or "
                                             "per-word probabilities to <submission>.proba.parquet).")
@click.option("--name", default="ensemble", show_default=True,
              help="Names the outputs: weights/<name>-<method>.json, submissions/<name>-<method>.csv.")
@click.option("--valid-split", default="valid", show_default=True, help="The --data split weights are fitted on.")
@click.option("--test-split", default="test", show_default=True, help="The --data split the submission is for.")
@click.option("--cache-dir", type=click.Path(path_type=str), default=None,
              help="Logit cache folder [default: .ensemble/cache beside ensemble.toml, else here].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of optimize starts, select bags, stack folds.")
@click.option("--class-order", default=None, metavar="A,B,...",
              help="The class of each integer index, when the sample submission or the labels hold indices "
                   "[default: the order every member's id2label agrees on].")
@click.option("--trained-on-valid", multiple=True, metavar="NAME",
              help="A model trained on the validation rows: left out of the vote, as of the report's ensembles.")
@click.option("--include-optimistic", is_flag=True, help="Keep models with optimistic scores, and fit weights over them.")
@click.option("--force", is_flag=True, help="Replace a submission of the same name that another procedure wrote.")
@adjust_options
@fold_options
@functools.partial(value_options, metric=True)
@inference_options
@common_options
def vote_cmd(models, data, project, id_col, text_cols, label_col, encoding, quoting, weights, combine, subset, temperature,
             calibrate, acc_power, sample_submission, out, proba, name, valid_split, test_split, cache_dir, seed,
             class_order, trained_on_valid, include_optimistic, force, adjust, prior, adjust_metric, folds, fold_column,
             refit, batch_size, max_length, pad_to_multiple_of, device, dtype):
    """Combine cached logits with weights and write the submission; never runs a model.

    Fitted weights go to weights/<name>-<method>.json with what they were fitted on; passing
    that file to --weights reuses them (refused when the models or validation data changed).

    \b
    Examples:
      ensemble vote --model a=weights/a-top4 --model b=weights/b-top4 \\
                    --data valid=data/valid.csv --data test=data/test.csv --weights acc
      ensemble vote ... --weights optimize --temperature --sample-submission data/sample_submission.csv
      ensemble vote ... --weights weights/ensemble-optimize.json
      ensemble vote ... --weights 0.7,0.3 --combine geometric
      ensemble vote ... --weights acc --adjust prior --prior data/train.csv
      ensemble vote ... --metric roc_auc --combine rank --sample-submission data/sample_submission.csv
      ensemble vote --model a=runs/a-fold{fold} --model b=runs/b-fold{fold} --folds data/folds.csv \\
                    --data train=data/train.csv --data test=data/test.csv --weights auto
    """
    from ensemble.core.options import weights_kind
    from ensemble.workflows.vote import vote

    inputs = InputFlags(project, models, data, id_col, text_cols, label_col, encoding, cache_dir, quoting)
    inputs.need()
    model_paths = inputs.models
    p = inputs.project
    from ensemble.cli.project import weights_setting

    weights = weights_setting(p, weights)
    combine = combine or (p.vote.get("combine") if p else None) or "prob"
    if sample_submission is None and p is not None and p.sample_submission is not None:
        sample_submission = str(p.sample_submission)
    from ensemble.cli.project import adjust_settings

    given_adjust = adjust
    adjust, prior, adjust_metric = adjust_settings(p, adjust, prior, adjust_metric, "none")
    if given_adjust is None and adjust != "none" and weights_kind(weights) in ("fixed", "file"):
        # the project's default must not turn a valid command into an error
        log.info("%s: [vote] adjust = %r is the project's default for fitted weights; %s are used as they are (pass "
                 "--adjust to adjust them)", p.path, adjust,
                 "a weights file's weights and adjustment" if weights_kind(weights) == "file" else "fixed weights")
        adjust = "none"
    if subset:
        wanted = [m.strip() for m in subset.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in model_paths]
        if unknown:
            raise EnsembleError(f"--models: {unknown[0]!r} is not a --model name ({', '.join(model_paths)})")
        model_paths = {m: model_paths[m] for m in wanted}
    folds, fold_column, refit = inputs.fold_settings(folds, fold_column, refit)
    given = inputs.inputs(model_paths, folds, fold_column, refit, class_order=class_order,
                          inference=inputs.inference(batch_size, max_length, pad_to_multiple_of, device, dtype))
    frame = vote(given, weights=weights, combine=combine, valid=valid_split, test=test_split,
                 sample_submission=sample_submission, out=out, proba=proba, temperature=temperature,
                 calibrate=calibrate, acc_power=acc_power, name=name, seed=seed,
                 weights_dir=(p.root / "weights") if p else "weights",
                 submissions_dir=(p.root / "submissions") if p else "submissions", adjust=adjust, prior=prior,
                 adjust_metric=adjust_metric,
                 trained_on_valid=list(trained_on_valid) + (p.trained_on_valid if p and not models else []),
                 include_optimistic=include_optimistic, force=force, **value_flags(p))
    click.echo(frame.attrs["path"])


@main.command("report")
@click.option("--model", "models", multiple=True, metavar="NAME=PATH",
              help="A model folder whose validation logits are cached, repeatable.")
@data_options
@click.option("--methods", default=None, metavar="A,B,...",
              help="Ensemble methods to estimate besides uniform [default: acc,optimize,select,stack].")
@click.option("--metric", default="accuracy", show_default=True,
              help="The competition's metric: what auto chooses by and the headline and leaderboard are in "
                   "(accuracy, macro_f1, log_loss, roc_auc, qwk; a scikit-learn scorer name is compared by auto "
                   "only); regression and multi-label: their own metrics; entities: f1 or f<beta>.")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Rounds of folds, each with another shuffle [default: 2, 1 above 10,000 rows].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--combine", type=click.Choice(allowed("combine")), default="prob", show_default=True)
@click.option("--valid-split", default="valid", show_default=True, help="The labelled --data split to report on.")
@click.option("--trained-on-valid", multiple=True, metavar="NAME",
              help="A model trained on the validation rows: marked and kept out of weight fitting.")
@click.option("--include-optimistic", is_flag=True, help="Fit weights over models with optimistic scores too.")
@click.option("--best-k", type=click.IntRange(min=0), default=3, show_default=True,
              help="Winner's curse: also estimate averaging the K best members (0: only the single best).")
@adjust_options
@functools.partial(fold_options, count=True)
@value_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.option("--html", "html_out", type=click.Path(path_type=str), default=None,
              help="Also write an HTML page with plots.")
@click.option("--cache-dir", type=click.Path(path_type=str), default=None,
              help="Logit cache folder [default: .ensemble/cache beside ensemble.toml, else here].")
@click.option("--class-order", default=None, metavar="A,B,...",
              help="The class of each integer label, when the members number their classes differently.")
@inference_options
@common_options
def report_cmd(models, data, project, id_col, text_cols, label_col, encoding, quoting, methods, metric, repeats, seed,
               combine, valid_split, trained_on_valid, include_optimistic, best_k, adjust, prior, adjust_metric, folds,
               fold_column, refit, as_json, html_out, cache_dir, class_order, batch_size, max_length, pad_to_multiple_of,
               device, dtype):
    """Per-model and ensemble scores with a cross-validated estimate of what fitted weights will
    score on unseen data, and the method --weights auto would choose.

    \b
    Examples:
      ensemble report --model a=weights/a-top4 --model b=weights/b-top4 --data valid=data/valid.csv
      ensemble report ... --html report.html --methods acc,optimize
      ensemble report ... --json > report.json
      ensemble report --model a=runs/a-fold{fold} --folds data/folds.csv --data train=data/train.csv
    """
    from ensemble.workflows.report import report

    if as_json:  # stdout holds the JSON document alone: what the steps say goes to stderr
        for h in log.handlers:
            if getattr(h, "stream", None) is sys.stdout:
                h.setStream(sys.stderr)
    inputs = InputFlags(project, models, data, id_col, text_cols, label_col, encoding, cache_dir, quoting)
    inputs.need()
    tov = list(trained_on_valid) + (inputs.project.trained_on_valid if inputs.project and not models else [])
    from ensemble.cli.project import adjust_settings

    adjust, prior, adjust_metric = adjust_settings(inputs.project, adjust, prior, adjust_metric, "auto")
    folds, fold_column, refit = inputs.fold_settings(folds, fold_column, refit)
    cv_or_file = folds_value(folds)  # --folds K or --folds FILE
    given = inputs.inputs(None, None if isinstance(cv_or_file, int) else cv_or_file, fold_column, refit,
                          class_order=class_order,
                          inference=inputs.inference(batch_size, max_length, pad_to_multiple_of, device, dtype))
    rep = report(given, valid=valid_split, methods=[m.strip() for m in methods.split(",")] if methods else None,
                 metric=metric, cv=cv_or_file if isinstance(cv_or_file, int) else None, repeats=repeats, seed=seed,
                 combine=combine, trained_on_valid=tov, include_optimistic=include_optimistic, best_k=best_k,
                 adjust=adjust, prior=prior, adjust_metric=adjust_metric,
                 **{k: v for k, v in value_flags(inputs.project).items() if k != "metric"})
    if html_out:
        from pathlib import Path

        from ensemble.io.atomic import atomic_write

        page = rep.to_html()
        atomic_write(Path(html_out), lambda p: p.write_text(page, encoding="utf-8"))
    if as_json:
        import json

        click.echo(json.dumps(rep.to_dict(), indent=2))
    else:
        log.info("%s", rep.to_text())
        if html_out:
            log.info("wrote %s", html_out)


@main.command("init")
@click.argument("folder", type=click.Path(path_type=str), default=".")
@click.option("--force", is_flag=True, help="Replace an existing ensemble.toml.")
@common_options
def init_cmd(folder, force):
    """Write a commented ensemble.toml from the runs, model folders and data files found here.

    \b
    Example:
      cd my-competition && ensemble init && ensemble run
    """
    from ensemble.cli.init import init_project

    path = init_project(folder, force=force)
    log.info("%s", path.read_text(encoding="utf-8"))
    click.echo(str(path))


@main.command("run")
@click.option("--project", type=click.Path(path_type=str), default=None,
              help="The project file [default: the nearest ensemble.toml up from here].")
@click.option("--k", type=click.IntRange(min=1), default=None,
              help="Average the best K checkpoints of every [runs] entry [default: its k, else 4].")
@click.option("--weights", default=None, help="Voting weights [default: [vote] weights, else auto].")
@click.option("--name", default="ensemble", show_default=True, help="Names the outputs.")
@click.option("--trust-remote-code", is_flag=True,
              help="Let every member run the code its folder ships (auto_map) [default: trust_remote_code = true "
                   "in its [models] or [runs] entry].")
@common_options
def run_cmd(project, k, weights, name, trust_remote_code):
    """Average every [runs] entry, predict, vote and report, as ensemble.toml says; each step is
    cached, so a second run redoes only what changed and says so.

    \b
    Example:
      ensemble example demo && cd demo && ensemble run
    """
    from ensemble.cli.project import find_project, load_project
    from ensemble.cli.run import run_project

    path = project or find_project()
    if path is None:
        raise EnsembleError("no ensemble.toml here or in a parent folder; pass --project FILE or run ensemble init")
    result = run_project(load_project(path), k=k, weights=weights, name=name, trust_remote_code=trust_remote_code,
                         progress=click.get_current_context().meta["ensemble.progress"])
    log.info("%s", result.report_text)
    log.info("report: %s", result.report_html)
    click.echo(str(result.submission))  # the submission, once: the last line


@main.group("sweep")
def sweep_group() -> None:
    """Inspect a hyper-parameter sweep (Trainer.hyperparameter_search's output_dir)."""


@sweep_group.command("ls")
@click.argument("sweep_dir", type=click.Path(path_type=str))
@click.option("--metric", default=None,
              help="eval metric to rank trials by (eval_ prefix optional) [default: eval_accuracy, "
                   "else the runs' metric_for_best_model, else eval_loss].")
@click.option("--greater-is-better/--lower-is-better", "greater_is_better", default=None,
              help="Metric direction [default: the runs' own for their metric_for_best_model, else the name's].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@common_options
def sweep_ls(sweep_dir, metric, greater_is_better, as_json):
    """List the trials of a sweep, best first: parameters, best eval metric and its step.

    SWEEP_DIR holds one Trainer run folder per trial (run-<n>/checkpoint-N, as
    hyperparameter_search writes), or any run folders.

    \b
    Examples:
      ensemble sweep ls sweeps/bert
      ensemble vote --model bert=sweeps/bert@top3 ...     # the best checkpoint of the 3 best trials
    """
    from ensemble.averaging.sweeps import find_sweep

    sweep = find_sweep(sweep_dir, metric, greater_is_better)
    if as_json:
        import json

        click.echo(json.dumps(sweep.to_dict(), indent=2))
    else:
        click.echo(sweep.format_table())


@main.group("folds")
def folds_group() -> None:
    """Assign training rows to K folds for K-fold training, or check a folds file."""


@folds_group.command("make")
@click.argument("train", type=click.Path(path_type=str))
@click.option("--k", "k", type=click.IntRange(min=2), default=5, show_default=True, help="Number of folds.")
@click.option("--id", "id_col", default=None, help="Id column [default: id when present, else row numbers].")
@click.option("--label", "label_col", default=None, help="Label column to stratify by [default: label when present].")
@click.option("--group", default=None, metavar="COLUMN",
              help="A column whose values never span two folds (an author, a document, a user).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-stratify", is_flag=True, help="Plain (or grouped) folds, not stratified by label.")
@click.option("--out", type=click.Path(path_type=str), default="data/folds.csv", show_default=True,
              help="The folds file to write (id,fold), with <out>.json beside it.")
@click.option("--force", is_flag=True, help="Replace an existing folds file.")
@click.option("--encoding", default=None, help="Encoding of CSV/TSV/JSONL files, e.g. cp949 [default: UTF-8].")
@click.option("--quoting", type=click.Choice(allowed("quoting")), default="auto", show_default=True,
              help="How CSV/TSV fields are quoted (none: raw TSV, quotes are text).")
@common_options
def folds_make(train, k, id_col, label_col, group, seed, no_stratify, out, force, encoding, quoting):
    """Write the fold of every row of TRAIN (stratified by label; grouped with --group) with
    scikit-learn's splitters, as id,fold.

    \b
    Examples:
      ensemble folds make data/train.csv --k 5
      ensemble folds make data/train.tsv --label hate --group author --out data/folds.csv
    """
    from ensemble.data.folds import make_folds

    made = make_folds(train, out, k, id=id_col, label=label_col, group=group, seed=seed, stratify=not no_stratify,
                      encoding=encoding, quoting=quoting, force=force)
    click.echo(str(made.path))


@folds_group.command("show")
@click.argument("train", type=click.Path(path_type=str))
@click.option("--folds", "folds_file", type=click.Path(path_type=str), required=True,
              help="The folds file: id,fold, or any table with an id and a fold column.")
@click.option("--fold-column", default=None, help="Its fold column [default: fold, else kfold].")
@click.option("--folds-id", default=None, help="Its id column [default: id].")
@click.option("--id", "id_col", default=None, help="TRAIN's id column [default: id when present, else row numbers].")
@click.option("--label", "label_col", default=None, help="TRAIN's label column [default: label when present].")
@click.option("--encoding", default=None, help="Encoding of CSV/TSV/JSONL files, e.g. cp949 [default: UTF-8].")
@click.option("--quoting", type=click.Choice(allowed("quoting")), default="auto", show_default=True)
@common_options
def folds_show(train, folds_file, fold_column, folds_id, id_col, label_col, encoding, quoting):
    """Check a folds file against TRAIN (every row in exactly one fold, none empty) and print the
    rows and label shares of each fold.

    \b
    Example:
      ensemble folds show data/train.csv --folds data/train_folds.csv --fold-column kfold
    """
    from ensemble.data.folds import check_sidecar, fold_table, read_folds, training_rows

    ids, labels = training_rows(train, id_col, label_col, encoding, quoting)
    folds = read_folds(folds_file, ids, id_column=folds_id, fold_column=fold_column, encoding=encoding)
    changed = check_sidecar(folds, train)
    if changed:
        log.warning("%s", changed)
    click.echo(fold_table(folds, labels))


@main.group("cache")
def cache_group() -> None:
    """List or prune the logit cache."""


@cache_group.command("ls")
@click.option("--cache-dir", type=click.Path(path_type=str), default=None,
              help="Logit cache folder [default: .ensemble/cache beside ensemble.toml, else here].")
@common_options
def cache_ls(cache_dir):
    """List cache entries: model, split, rows, size, age.

    \b
    Example:
      ensemble cache ls --cache-dir .ensemble/cache
    """
    import time

    from ensemble.inference.cache import OutputCache

    cache = OutputCache(cache_dir)
    entries = cache.entries()
    if not entries:
        log.info("%s: no cache entries", cache.root)
        return
    log.info("%s", f"{'key':<12}  {'model':<24}  {'split':<12}  {'rows':>8}  {'size':>9}  {'age':>8}")
    for e in entries:
        age = _age(time.time() - e.mtime)
        rows = "?" if e.rows is None else str(e.rows)
        model = e.metadata.get("model", "?") if not e.damaged else f"damaged: {e.damaged}"[:24]
        log.info("%s", f"{e.key[:12]:<12}  {model:<24}  {e.metadata.get('split', '?'):<12}  {rows:>8}  "
                       f"{_size(e.size):>9}  {age:>8}")
    log.info("%d entries, %s in %s", len(entries), _size(sum(e.size for e in entries)), cache.root)


@cache_group.command("prune")
@click.option("--model", "models", multiple=True, metavar="NAME=PATH", help="A current model folder, repeatable.")
@data_options
@click.option("--cache-dir", type=click.Path(path_type=str), default=None,
              help="Logit cache folder [default: .ensemble/cache beside ensemble.toml, else here].")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@functools.partial(fold_options, refit=False)
@inference_options
@common_options
def cache_prune(models, data, project, id_col, text_cols, label_col, encoding, quoting, cache_dir, dry_run, folds,
                fold_column, batch_size, max_length, pad_to_multiple_of, device, dtype):
    """Remove entries that no current model or data file can produce.

    An entry is kept when its model is one of --model, its data one of --data (ids and texts
    as read with the column options) and its inference settings the ones in force (the flags,
    else [predict] of ensemble.toml, else predict's defaults: what vote and report read); a fold
    group's fold models keep their held-out rows of --data train (with --folds) and the other
    splits; damaged entries always go.

    \b
    Example:
      ensemble cache prune --model bert=weights/bert-top4 --data valid=data/valid.csv --data test=data/test.csv
    """
    from ensemble.inference.cache import OutputCache

    inputs = InputFlags(project, models, data, id_col, text_cols, label_col, encoding, cache_dir, quoting)
    if not inputs.models or not inputs.data:
        raise EnsembleError("cache prune needs the current models and data: pass --model NAME=PATH and "
                            "--data SPLIT=PATH for each, or keep them in ensemble.toml")
    cache = OutputCache(inputs.cache_dir)
    jobs = inputs.jobs(folds, fold_column)  # (member, model, its splits): fold models with their own rows
    from ensemble.inference.settings import settings_difference

    settings = inputs.inference(batch_size, max_length, pad_to_multiple_of, device, dtype)
    fingerprint = {ref.name: ref.fingerprint(cache.file_digest) for _, ref, _ in jobs}
    refs = {fingerprint[ref.name]: ref for _, ref, _ in jobs}
    pairs = {(fingerprint[ref.name], split.digest) for _, ref, todo in jobs for _, split in todo}
    other_settings: set[str] = set()

    def keep(entry) -> bool:  # of the settings in force: what vote and report read
        why = settings_difference(entry.settings, refs[entry.metadata["model_digest"]], settings)
        if why is not None:
            other_settings.add(entry.key)
        return why is None

    before = len(cache.entries())
    removed = cache.prune(pairs=pairs, dry_run=dry_run, keep=keep)
    for e in removed:
        why = e.damaged or ("other inference settings" if e.key in other_settings else "no current model or data")
        log.info("%s %s (%s/%s, %s)", "would remove" if dry_run else "removed", e.path.name,
                 e.metadata.get("model", "?"), e.metadata.get("split", "?"), why)
    from ensemble.averaging.build import remove_leftovers

    # what killed averages left beside the members' folders (weights/ of a project)
    folders = {ref.folder.parent for _, ref, _ in jobs} | ({inputs.project.root / "weights"} if inputs.project else set())
    for path in (x for f in sorted(folders) for x in remove_leftovers(f, dry_run=dry_run)):
        log.info("%s %s (left by an average that was killed)", "would remove" if dry_run else "removed", path)
    log.info("%d %s, %d kept", len(removed), "to remove" if dry_run else "removed", before - len(removed))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _age(seconds: float) -> str:
    for unit, s in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= s:
            return f"{seconds / s:.0f} {unit}"
    return f"{seconds:.0f} s"


@main.command("example")
@click.argument("folder", type=click.Path(path_type=str))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--folds", type=click.IntRange(min=2), default=None, metavar="K",
              help="A K-fold example instead: two backbones trained K times (fold k held out) and once on every row "
                   "(the refits), folds.csv, and an ensemble.toml that fits on the out-of-fold rows.")
@click.option("--task", type=click.Choice(TASK_CHOICES), default=DEFAULT_TASK.name,
              show_default=True, help="regression: sentence-pair regressors with two targets; multi_label: taggers "
                                      "with four labels (one run with its outputs in another order); ner (entities): "
                                      "token classifiers over two tokenizers (one run with its tags in another order); "
                                      "summarization: a tiny BART and a tiny T5 over two tokenizers, trained with "
                                      "the real Seq2SeqTrainer on Korean-looking dialogues.")
@common_options
def example(folder, seed, folds, task):
    """Write a small self-contained example: data, three tiny Trainer runs and ensemble.toml.

    Everything is generated by this package (template sentences, a character vocabulary, tiny
    BERT models trained with the real Trainer): no download. runs/bert-b's checkpoints hold no
    tokenizer, as when a notebook pads up front; its tokenizer is in base/. runs/bert-c was
    trained with the classes in another order. Training shows a progress bar on a terminal.

    \b
    Example:
      ensemble example demo && ensemble avg-ckpt demo/runs/bert-a --k 3 --out demo/weights/bert-a-top3
      ensemble example kfold --folds 5 && cd kfold && ensemble run
      ensemble example sts --task regression && cd sts && ensemble run
      ensemble example ner --task ner && cd ner && ensemble run
      ensemble example dialogues --task summarization && cd dialogues && ensemble run
    """
    from ensemble.cli.columns_example import make_multilabel_example, make_regression_example
    from ensemble.cli.entities_example import make_entities_example
    from ensemble.cli.example import make_example
    from ensemble.cli.summarization_example import make_summarization_example
    from ensemble.tasks import task_named

    # each task's example, by the task's name
    examples = {"classification": make_example, "regression": make_regression_example,
                "multi_label": make_multilabel_example, "entities": make_entities_example,
                "summarization": make_summarization_example}
    task = task_named(task).name
    if task not in examples:
        raise EnsembleError(f"no example for task {task}; examples exist for {', '.join(examples)}")
    progress = click.get_current_context().meta["ensemble.progress"]
    click.echo(str(examples[task](folder, seed=seed, progress=progress, folds=folds)))
