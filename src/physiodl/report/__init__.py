"""The run report: figures (`plots`) and one self-contained ``report.html`` (`write_report`)."""

from physiodl.report.build import write_report

__all__ = ["write_report"]
