"""Build the optional C forest kernel; jahs_gym falls back to numpy when it is missing."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("jahs_gym._forest", ["jahs_gym/_forest.c"], optional=True,
                             extra_compile_args=["-O3"])])
