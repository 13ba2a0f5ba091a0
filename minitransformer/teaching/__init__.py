"""What the tutorials use to show and check things: figures (`plots`), looking inside a trained model
(`inspection`) and the exercises' checkers (`exercises`)."""
