"""Exceptions raised by the Tableau to TMDL converter."""

from __future__ import annotations


class WorkbookError(Exception):
    """The input file is not a Tableau workbook the converter can read.

    The message names the file and the problem, so the job's ``failed``
    outcome explains itself to the person who uploaded the file.
    """


class UntranslatableFormulaError(Exception):
    """A Tableau formula uses something the DAX translator does not handle.

    The converter catches it, writes a placeholder expression and keeps the
    original formula; the message is the reason shown in the warning.
    """
