-- A few rows so that a fresh start has something to list.
INSERT INTO movies (id, title, director, release_year, created_at, updated_at) VALUES
    ('0b7f3c1e-4d1a-4f5e-9a51-3f0e6c2d9a01', 'Metropolis', 'Fritz Lang', 1927, 0, 0),
    ('5c2e8b7d-1f3a-4c6b-8e2d-7a9f0b1c2d02', 'Seven Samurai', 'Akira Kurosawa', 1954, 0, 0),
    ('9d4a6f2b-3e5c-4a7d-b1f8-2c3e4d5f6a03', 'Spirited Away', 'Hayao Miyazaki', 2001, 0, 0);
