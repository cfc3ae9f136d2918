[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,bench,bin}/**/*.{ex,exs}"],
  line_length: 110
]
