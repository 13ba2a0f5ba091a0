"""What the tutorials use to show and check things: figures (`plots`), looking inside a trained model
(`inspection`), what each head does and experiments on one head (`circuits`) and the exercises' checkers
(`exercises`)."""
