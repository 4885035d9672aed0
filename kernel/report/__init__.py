"""The report and the dashboard: runs compared in a browser.

- :mod:`kernel.report.runs` is the dashboard's cached scan of the store; runs themselves are
  :class:`kernel.store.Run` objects read by :mod:`kernel.run_reader` (as ``kernel compare`` reads them);
- :mod:`kernel.report.page` turns runs into the page's data (curves, table rows, groups, dataset section);
- :mod:`kernel.report.sections` asks plugins for their parts of the page (hook ``kernel_report_sections``);
- :mod:`kernel.report.html` writes the self-contained report (plotly.js, the page's code and data inlined);
- :mod:`kernel.report.server` serves the same page live from the run store.

The page itself (``assets/app.js``) is shared by both: the report reads its data from the file, the
dashboard polls ``/api/state``. Charts are plotly.js, taken from the installed ``plotly`` wheel.
"""
