//! `movies`: the catalogue.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::routes::movies::Movie;

fn movie(row: &AnyRow) -> Result<Movie, sqlx::Error> {
    Ok(Movie {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        director: row.try_get("director")?,
        year: row.try_get("release_year")?,
    })
}

impl Store {
    /// A page of movies, ordered by title (then id, so pages are stable).
    pub async fn list_movies(&self, limit: i64, offset: i64) -> Result<Vec<Movie>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, title, director, release_year FROM movies \
             ORDER BY title, id LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(movie).collect()
    }

    pub async fn find_movie(&self, id: &str) -> Result<Option<Movie>, sqlx::Error> {
        sqlx::query("SELECT id, title, director, release_year FROM movies WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(movie)
            .transpose()
    }

    pub async fn insert_movie(&self, movie: &Movie, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO movies (id, title, director, release_year, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&movie.id)
        .bind(&movie.title)
        .bind(&movie.director)
        .bind(movie.year)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the movie with `movie.id`; whether it existed.
    pub async fn update_movie(&self, movie: &Movie, now: i64) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query(
            "UPDATE movies SET title = $2, director = $3, release_year = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(&movie.id)
        .bind(&movie.title)
        .bind(&movie.director)
        .bind(movie.year)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated > 0)
    }

    /// Whether the movie existed.
    pub async fn delete_movie(&self, id: &str) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query("DELETE FROM movies WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }
}
