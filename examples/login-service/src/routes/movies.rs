//! The movies catalogue: reading is public, writing needs `movies:write`
//! (enforced by the library layer on the write routes).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::reject_nul;
use super::responses::{BearerRejection, JsonBodyRejections, MoviesWriteRejection};
use crate::AppState;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::store::now;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Movie {
    #[schema(example = "0b7f3c1e-4d1a-4f5e-9a51-3f0e6c2d9a01")]
    pub id: String,
    #[schema(example = "Metropolis")]
    pub title: String,
    #[schema(example = "Fritz Lang")]
    pub director: Option<String>,
    #[schema(example = 1927)]
    pub year: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MovieInput {
    #[schema(
        example = "Metropolis",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000]*$"
    )]
    pub title: String,
    #[schema(example = "Fritz Lang", max_length = 200, pattern = "^[^\\u0000]*$")]
    pub director: Option<String>,
    #[schema(example = 1927, minimum = 1888, maximum = 2100)]
    #[serde(deserialize_with = "integral")]
    pub year: i64,
}

/// JSON Schema counts `1984.0` as an integer; serde's `i64` does not.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(i) = number.as_i64() {
        return Ok(i);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(f as i64),
        _ => Err(serde::de::Error::custom("expected an integer")),
    }
}

const MAX_TEXT_CHARS: usize = 200;
const MAX_PAGE: u32 = 100;
const MAX_OFFSET: u32 = 1_000_000;

impl MovieInput {
    fn validate(&self) -> Result<(), ApiError> {
        let title_chars = self.title.chars().count();
        if title_chars == 0 || title_chars > MAX_TEXT_CHARS {
            return Err(ApiError::unprocessable(format!(
                "title must have 1 to {MAX_TEXT_CHARS} characters"
            )));
        }
        reject_nul("title", &self.title)?;
        if let Some(director) = &self.director {
            if director.chars().count() > MAX_TEXT_CHARS {
                return Err(ApiError::unprocessable(format!(
                    "director must have at most {MAX_TEXT_CHARS} characters"
                )));
            }
            reject_nul("director", director)?;
        }
        if !(1888..=2100).contains(&self.year) {
            return Err(ApiError::unprocessable(
                "year must be between 1888 and 2100",
            ));
        }
        Ok(())
    }

    fn into_movie(self, id: String) -> Movie {
        Movie {
            id,
            title: self.title,
            director: self.director,
            year: self.year,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most 100; default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Default 0.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<u32>,
}

/// Ids are UUIDs; anything else cannot exist, and must not reach the
/// database as an arbitrary string.
fn known_shape(id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::not_found("no such movie"))
}

/// List movies, ordered by title.
#[utoipa::path(
    get,
    path = "/movies",
    tag = "movies",
    params(Page),
    responses(
        (status = 200, description = "A page of movies", body = Vec<Movie>),
        (status = 400, description = "Invalid paging parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Movie>>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = page.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(format!(
            "offset must be at most {MAX_OFFSET}"
        )));
    }
    let movies = state
        .store
        .list_movies(i64::from(limit), i64::from(offset))
        .await?;
    Ok(Json(movies))
}

/// One movie.
#[utoipa::path(
    get,
    path = "/movies/{id}",
    tag = "movies",
    params(("id" = String, Path, description = "Movie id (UUID)")),
    responses(
        (status = 200, description = "The movie", body = Movie),
        (status = 404, description = "No such movie", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Movie>, ApiError> {
    known_shape(&id)?;
    let movie = state
        .store
        .find_movie(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such movie"))?;
    Ok(Json(movie))
}

/// Add a movie. Needs scope `movies:write`.
#[utoipa::path(
    post,
    path = "/movies",
    tag = "movies",
    security(("bearer" = ["movies:write"]), ("dpop" = ["movies:write"])),
    request_body = MovieInput,
    responses(
        (status = 201, description = "Created", body = Movie),
        JsonBodyRejections,
        BearerRejection,
        MoviesWriteRejection,
        (status = 422, description = "Missing or invalid field", body = ErrorBody),
        (status = 503, description = "Database or revocation store unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<MovieInput>,
) -> Result<(StatusCode, Json<Movie>), ApiError> {
    input.validate()?;
    let movie = input.into_movie(uuid::Uuid::new_v4().to_string());
    state.store.insert_movie(&movie, now()).await?;
    Ok((StatusCode::CREATED, Json(movie)))
}

/// Replace a movie. Needs scope `movies:write`.
#[utoipa::path(
    put,
    path = "/movies/{id}",
    tag = "movies",
    security(("bearer" = ["movies:write"]), ("dpop" = ["movies:write"])),
    params(("id" = String, Path, description = "Movie id (UUID)")),
    request_body = MovieInput,
    responses(
        (status = 200, description = "Updated", body = Movie),
        JsonBodyRejections,
        BearerRejection,
        MoviesWriteRejection,
        (status = 404, description = "No such movie", body = ErrorBody),
        (status = 422, description = "Missing or invalid field", body = ErrorBody),
        (status = 503, description = "Database or revocation store unavailable", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<MovieInput>,
) -> Result<Json<Movie>, ApiError> {
    known_shape(&id)?;
    input.validate()?;
    let movie = input.into_movie(id);
    if !state.store.update_movie(&movie, now()).await? {
        return Err(ApiError::not_found("no such movie"));
    }
    Ok(Json(movie))
}

/// Remove a movie. Needs scope `movies:write`.
#[utoipa::path(
    delete,
    path = "/movies/{id}",
    tag = "movies",
    security(("bearer" = ["movies:write"]), ("dpop" = ["movies:write"])),
    params(("id" = String, Path, description = "Movie id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        BearerRejection,
        MoviesWriteRejection,
        (status = 404, description = "No such movie", body = ErrorBody),
        (status = 503, description = "Database or revocation store unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    known_shape(&id)?;
    if !state.store.delete_movie(&id).await? {
        return Err(ApiError::not_found("no such movie"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, director: Option<&str>, year: i64) -> MovieInput {
        MovieInput {
            title: title.into(),
            director: director.map(Into::into),
            year,
        }
    }

    #[test]
    fn whole_numbers_written_as_floats_are_integers() {
        let parse = |json: &str| serde_json::from_str::<MovieInput>(json).map(|m| m.year);
        assert_eq!(parse(r#"{"title":"M","year":1984.0}"#).unwrap(), 1984);
        assert_eq!(parse(r#"{"title":"M","year":1984}"#).unwrap(), 1984);
        assert!(parse(r#"{"title":"M","year":1984.5}"#).is_err());
        assert!(parse(r#"{"title":"M","year":"1984"}"#).is_err());
    }

    #[test]
    fn validation_matches_the_documented_schema() {
        assert!(input("M", None, 1888).validate().is_ok());
        assert!(
            input(&"t".repeat(200), Some(&"d".repeat(200)), 2100)
                .validate()
                .is_ok()
        );
        assert!(input("", None, 2000).validate().is_err());
        assert!(input(&"t".repeat(201), None, 2000).validate().is_err());
        assert!(input("M", Some(&"d".repeat(201)), 2000).validate().is_err());
        assert!(input("M", None, 1887).validate().is_err());
        assert!(input("M\0", None, 2000).validate().is_err());
    }
}
