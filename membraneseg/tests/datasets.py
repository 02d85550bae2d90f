"""The datasets the protocol tests use, as pyworkflow DataSets (the way every Scipion plugin names its test data).

- ScipionTomo's ``tomosegmemtv`` and ``emd_10439``, registered by ``tomo.tests``: downloaded from the Scipion
  server (``scipion3 testdata --download <name>``, or by DataSet.getDataSet unless SCIPION_TEST_NOSYNC is set).
  ``getScipionTomoDataSet`` makes the tests skip, saying how to fetch them, where they are absent.
- ``membraneseg_phantoms``, ours (see phantom_dataset.py): built on this machine when missing, never downloaded.

Import this module only after headless.configure() (conftest.py does it): pyworkflow reads SCIPION_TESTS once.
"""
import contextlib
import os
import unittest
from unittest import mock

import pyworkflow as pw
import tomo.tests  # noqa: F401  (registers ScipionTomo's datasets)
from pyworkflow.tests import DataSet
from pyworkflow.utils import yellowStr

from . import phantom_dataset

DataSet(name=phantom_dataset.NAME, folder=phantom_dataset.NAME, files=phantom_dataset.FILES)


def getScipionTomoDataSet(name, *keys):
    """The ScipionTomo dataset ``name`` once ``keys`` (its file keys) exist; else unittest.SkipTest with the
    reason and the command that fetches it."""
    ds = DataSet.getDataSet(name)
    missing = [ds.filesDict.get(key, key) for key in keys if not os.path.exists(ds.getFile(key))]
    if missing:
        why = ("SCIPION_TEST_NOSYNC is set, so no download was tried" if pw.Config.SCIPION_TEST_NOSYNC
               else "the download from the Scipion server did not bring them")
        reason = ("ScipionTomo's dataset %s is absent (%s not in %s; %s). Fetch it with 'scipion3 testdata "
                  "--download %s'." % (name, ", ".join(missing), ds.getPath(), why, name))
        print(yellowStr("Skipped: " + reason))    # Scipion's test runner does not report skips
        raise unittest.SkipTest(reason)
    return ds


def getPhantomDataSet():
    """``membraneseg_phantoms``, built first (about a minute) when its folder is missing or out of date.

    Where SCIPION_TEST_NOSYNC is unset, getDataSet asks the Scipion server for it first; the server does not
    have it and says so, which changes nothing here."""
    ds = DataSet.getDataSet(phantom_dataset.NAME)
    if not phantom_dataset.is_complete(ds.getPath()):
        phantom_dataset.build(ds.getPath())
    return ds


@contextlib.contextmanager
def testsFolder(root):
    """Registered datasets read from ``root`` as if it were SCIPION_TESTS, with downloads off: for running tests
    on fake copies of datasets laid out there."""
    with contextlib.ExitStack() as stack:
        for ds in list(DataSet._datasetDict.values()):
            stack.enter_context(mock.patch.object(ds, "path", os.path.join(root, ds.folder)))
        stack.enter_context(mock.patch.object(pw.Config, "SCIPION_TEST_NOSYNC", True))
        yield root
