"""The console's forms (Flask-WTF: each carries its CSRF token)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import PasswordField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


class FeedbackForm(FlaskForm):
    correct_department = SelectField("Correct department", validators=[DataRequired()])
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Save: wrong department")


class RightForm(FlaskForm):
    submit = SubmitField("Routing was right")


class RulesForm(FlaskForm):
    rules = TextAreaField("routing_rules.yaml", validators=[DataRequired()])
    note = StringField("What changed (for the history)", validators=[Optional(), Length(max=255)])
    submit = SubmitField("Check and save")


class PromptsForm(FlaskForm):
    prompts = TextAreaField("Prompts", validators=[DataRequired()])
    note = StringField("What changed (for the history)", validators=[Optional(), Length(max=255)])
    submit = SubmitField("Check and save")


class TryForm(FlaskForm):
    sentence = StringField("Sentence", validators=[Optional(), Length(max=500)])
    language = SelectField("Language")
    audio = FileField("or a WAV recording")
    submit = SubmitField("Try it")


class ActionForm(FlaskForm):
    """A bare form: a button with its CSRF token (claim, roll back, call back …)."""
    submit = SubmitField("Go")


class OutcomeForm(FlaskForm):
    outcome = SelectField("Outcome", choices=[
        ("reached", "Reached the citizen: resolved"),
        ("left_message", "Left a message"),
        ("no_answer", "No answer (retry later)"),
        ("busy", "Busy (retry later)"),
        ("wrong_number", "Wrong number"),
    ])
    note = StringField("Note", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Record outcome")
