"""Lifetimes' own BG/NBD and Gamma-Gamma fits on CDNOW's master file, the reference the
lifetime-value stage is held to (tests/it/cdnow.rs).

    python3 tests/cdnow_reference.py --path          # where lifetimes keeps CDNOW_master.txt
    python3 tests/cdnow_reference.py 1997-09-30 ...  # JSON: per run date, lifetimes' parameters

Each run date's summary is built as clv_summary builds ours: a purchase is a calendar day with
an order (its dollars summed), x the purchase days after the first, t_x and T in weeks from the
first purchase day to the last and to the run date; Gamma-Gamma on the customers with x > 0
and a positive mean spend over their repeat days (lifetimes refuses the others).
"""

import json
import os
import sys
import warnings

import lifetimes
import pandas as pd

MASTER = os.path.join(os.path.dirname(lifetimes.__file__), "datasets", "CDNOW_master.txt")


def summary(purchases, run_date):
    days = (
        purchases[purchases.date <= run_date]
        .groupby(["customer", "date"], as_index=False)
        .dollars.sum()
        .sort_values(["customer", "date"])
    )
    by_customer = days.groupby("customer")
    first, last = by_customer.date.min(), by_customer.date.max()
    x = by_customer.size() - 1
    repeat_dollars = by_customer.dollars.sum() - by_customer.dollars.first()
    return pd.DataFrame(
        {
            "x": x,
            "t_x": (last - first).dt.days / 7.0,
            "T": (run_date - first).dt.days / 7.0,
            "m": (repeat_dollars / x.where(x > 0)).fillna(0.0),
        }
    )


def fits(purchases, run_date):
    s = summary(purchases, run_date)
    result = {"customers": len(s)}
    try:
        bg = lifetimes.BetaGeoFitter().fit(s.x.values, s.t_x.values, s["T"].values)
        result["bg_nbd"] = {k: float(v) for k, v in bg.params_.items()}
    except Exception as error:  # lifetimes' ConvergenceError: reported, not raised
        result["bg_nbd_error"] = str(error).strip()
    repeat = s[(s.x > 0) & (s.m > 0)]
    try:
        gg = lifetimes.GammaGammaFitter().fit(repeat.x.values, repeat.m.values)
        result["gamma_gamma"] = {k: float(v) for k, v in gg.params_.items()}
    except Exception as error:
        result["gamma_gamma_error"] = str(error).strip()
    return result


def main(args):
    if args == ["--path"]:
        print(MASTER)
        return
    warnings.filterwarnings("ignore")
    purchases = pd.read_csv(MASTER, sep=r"\s+")
    purchases.columns = ["customer", "date", "cds", "dollars"]
    purchases["date"] = pd.to_datetime(purchases.date.astype(str), format="%Y%m%d")
    print(json.dumps({day: fits(purchases, pd.Timestamp(day)) for day in args}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
