"""Port of the Metaflow tutorial ``02-statistics`` (foreach and join).

Original: https://github.com/Netflix/metaflow/blob/master/metaflow/tutorials/02-statistics/stats.py

In Metaflow you write ``self.next(self.compute_statistics, foreach="genres")`` and a join step
``def join(self, inputs)``; in mlflowlet ``compute_statistics.map(items=s.results["genres"],
item_param="genre", dataframe=...)`` and a join step taking ``collect(...)`` of each value.
``IncludeFile("movie_data")`` becomes a ``str`` parameter holding the file's text (its default
is ``movies.csv`` beside this file, a small made-up table: the tutorial's data is not copied).
The genres are sorted so that every run fans out in the same order (Metaflow iterates a set).
"""

from __future__ import annotations

import csv
from pathlib import Path

from mlflowlet import collect, pipeline, step

MOVIE_DATA = (Path(__file__).parent / "movies.csv").read_text()


@step
def start(movie_data: str) -> dict:
    """Load the movie metadata and find every genre."""
    dataframe: dict[str, list] = {"movie_title": [], "title_year": [], "genres": [], "gross": []}
    for row in csv.DictReader(movie_data.splitlines()):
        dataframe["movie_title"].append(row["movie_title"])
        dataframe["title_year"].append(int(row["title_year"]))
        dataframe["genres"].append(row["genres"])
        dataframe["gross"].append(int(row["gross"]))
    genres = sorted({genre for genres in dataframe["genres"] for genre in genres.split("|")})
    return {"dataframe": dataframe, "genres": genres}


@step
def compute_statistics(genre: str, dataframe: dict) -> dict:
    """Compute statistics for a single genre."""
    print(f"Computing statistics for {genre}")
    selector = [genre in row for row in dataframe["genres"]]
    for col in dataframe.keys():
        dataframe[col] = [
            col for col, is_genre in zip(dataframe[col], selector, strict=True) if is_genre
        ]
    argsort_indices = sorted(range(len(dataframe["gross"])), key=dataframe["gross"].__getitem__)
    for col in dataframe.keys():
        dataframe[col] = [dataframe[col][idx] for idx in argsort_indices]
    del dataframe["title_year"]
    n_points = len(dataframe["movie_title"])
    quartiles = []
    for cut in [0.25, 0.5, 0.75]:
        idx = 0 if n_points < 2 else round(n_points * cut)
        quartiles.append(dataframe["gross"][idx])
    return {"genre": genre, "quartiles": quartiles, "dataframe": dataframe}


@step
def join(genre: list, quartiles: list, dataframe: list) -> dict:
    """Merge the genre-specific results into one dictionary."""
    genre_stats = {
        g.lower(): {"quartiles": q, "dataframe": d}
        for g, q, d in zip(genre, quartiles, dataframe, strict=True)
    }
    return {"genre_stats": genre_stats}


@step
def end() -> None:
    """End the flow."""


@pipeline(name="movie-stats-flow")
def movie_stats_flow(movie_data: str = MOVIE_DATA):
    """Fan out over the genres, compute quartiles of the gross per genre, join them."""
    s = start(movie_data=movie_data)
    stats = compute_statistics.map(
        items=s.results["genres"], item_param="genre", dataframe=s.results["dataframe"]
    )
    j = join(
        genre=collect(stats.results["genre"]),
        quartiles=collect(stats.results["quartiles"]),
        dataframe=collect(stats.results["dataframe"]),
    )
    end().after(j)
